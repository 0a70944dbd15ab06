#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Note [Fast number parsing]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// Parsing decimal text to Double dominates CSV ingest of numeric data. The common forms written by
// pandas, pyarrow, R and spreadsheets ("12", "-3.25", "0.000123", "6.02e23") have at most 19
// significant digits and a small decimal exponent. For those we accumulate the digits into a UInt64
// mantissa m and a power-of-ten exponent e; when m < 2^53 and |e| <= 22 both m and 10^|e| are exact
// Doubles, so a single IEEE multiplication or division gives the correctly rounded result (Clinger's
// fast path, "How to read floating point numbers accurately", 1990). Everything else (more than 15-16
// significant digits such as the 17-digit values scikit-learn writes, huge exponents, "inf") goes to
// the C library's strtod, which is correctly rounded. The fast path therefore never changes a result,
// it only skips the general algorithm. The scanners below rely on the chunk buffer ending in a NUL
// sentinel (Note [Chunk buffers]) so their digit loops need no bounds checks.

/// Powers of ten that are exact in binary64: 1e0 ... 1e22.
/// Written once at initialisation, read-only afterwards.
nonisolated(unsafe) let exactPowersOfTen: UnsafeMutablePointer<Double> = {
    let p = UnsafeMutablePointer<Double>.allocate(capacity: 23)
    var v = 1.0
    for i in 0...22 {
        p[i] = v
        v *= 10
    }
    return p
}()

enum NumberScan {
    case value
    case slow
    case invalid
}

@usableFromInline
struct Ascii {
    static let quote: UInt8 = 0x22
    static let newline: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let minus: UInt8 = 0x2D
    static let plus: UInt8 = 0x2B
    static let dot: UInt8 = 0x2E
    static let zero: UInt8 = 0x30
}

/// Scans a decimal number starting at `start` (no leading spaces). Stops at the first byte that
/// cannot continue the number; the caller checks that this byte ends the field.
@inline(__always)
func scanDouble(_ start: UnsafePointer<UInt8>, _ pow10: UnsafePointer<Double>)
    -> (value: Double, end: UnsafePointer<UInt8>, result: NumberScan)
{
    var p = start
    var negative = false
    if p[0] == Ascii.minus {
        negative = true
        p += 1
    } else if p[0] == Ascii.plus {
        p += 1
    }
    var mantissa: UInt64 = 0
    let integerStart = p
    while true {
        let d = p[0] &- Ascii.zero
        if d > 9 { break }
        mantissa = mantissa &* 10 &+ UInt64(d)
        p += 1
    }
    let integerDigits = p - integerStart
    var fractionDigits = 0
    if p[0] == Ascii.dot {
        p += 1
        let fractionStart = p
        while true {
            let d = p[0] &- Ascii.zero
            if d > 9 { break }
            mantissa = mantissa &* 10 &+ UInt64(d)
            p += 1
        }
        fractionDigits = p - fractionStart
    }
    let digits = integerDigits + fractionDigits
    if digits == 0 { return (0, p, .invalid) }
    var exponent = -fractionDigits
    if p[0] | 0x20 == 0x65 {  // 'e' or 'E'
        var q = p + 1
        var negativeExponent = false
        if q[0] == Ascii.minus {
            negativeExponent = true
            q += 1
        } else if q[0] == Ascii.plus {
            q += 1
        }
        let exponentStart = q
        var e = 0
        while true {
            let d = q[0] &- Ascii.zero
            if d > 9 { break }
            if e < 100_000 { e = e * 10 + Int(d) }
            q += 1
        }
        if q == exponentStart { return (0, q, .invalid) }
        exponent += negativeExponent ? -e : e
        p = q
    }
    if digits > 19 { return (0, p, .slow) }
    if mantissa == 0 { return (negative ? -0.0 : 0.0, p, .value) }
    guard mantissa < (1 << 53), exponent >= -22, exponent <= 22 else { return (0, p, .slow) }
    var v = Double(mantissa)
    if exponent < 0 { v /= pow10[-exponent] } else { v *= pow10[exponent] }
    return (negative ? -v : v, p, .value)
}

/// Scans an optionally signed decimal integer. `.slow` means it overflowed Int64.
@inline(__always)
func scanInt(_ start: UnsafePointer<UInt8>) -> (value: Int64, end: UnsafePointer<UInt8>, result: NumberScan) {
    var p = start
    var negative = false
    if p[0] == Ascii.minus {
        negative = true
        p += 1
    } else if p[0] == Ascii.plus {
        p += 1
    }
    let digitStart = p
    var v: UInt64 = 0
    while true {
        let d = p[0] &- Ascii.zero
        if d > 9 { break }
        v = v &* 10 &+ UInt64(d)
        p += 1
    }
    let n = p - digitStart
    if n == 0 { return (0, p, .invalid) }
    if n >= 19 {
        // Recompute with overflow checks; 19 digits may or may not fit.
        var w: UInt64 = 0
        var q = digitStart
        while q < p {
            let (m, o1) = w.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(q[0] &- Ascii.zero))
            if o1 || o2 { return (0, p, .slow) }
            w = a
            q += 1
        }
        v = w
        if negative {
            if v > UInt64(Int64.max) + 1 { return (0, p, .slow) }
            return (v == UInt64(Int64.max) + 1 ? Int64.min : -Int64(v), p, .value)
        }
        if v > UInt64(Int64.max) { return (0, p, .slow) }
    }
    return (negative ? -Int64(v) : Int64(v), p, .value)
}

/// Field-level parsers: the field's bytes are [start, end) (quotes already removed). Surrounding
/// ASCII spaces are ignored.
enum FieldValue {
    @inline(__always)
    static func trimmed(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>)
        -> (UnsafePointer<UInt8>, UnsafePointer<UInt8>)
    {
        var s = start
        var e = end
        while s < e, s[0] == Ascii.space || s[0] == Ascii.tab { s += 1 }
        while e > s, e[-1] == Ascii.space || e[-1] == Ascii.tab { e -= 1 }
        return (s, e)
    }

    /// True for the missing-value tokens: empty, NA, N/A, null, NaN, None, ? (case-insensitive,
    /// surrounding spaces ignored).
    @inline(__always)
    static func isMissing(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool {
        let (s, e) = trimmed(start, end)
        let n = e - s
        if n == 0 { return true }
        if n > 4 { return false }
        var word: UInt32 = 0
        for i in 0..<n {
            var c = UInt32(s[i])
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            word |= c << (8 * UInt32(i))
        }
        switch n {
        case 1: return word == 0x3F  // ?
        case 2: return word == 0x616E  // na
        case 3: return word == 0x2F_6E | 0x61 << 16 || word == 0x6E_616E  // n/a, nan
        case 4: return word == 0x6C6C_756E || word == 0x656E_6F6E  // null, none
        default: return false
        }
    }

    /// Parses a whole field as a Double; nil when it is not a number.
    static func double(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Double? {
        let (s, e) = trimmed(start, end)
        let n = e - s
        if n == 0 || n > 400 { return nil }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n + 1) { tmp in
            let t = tmp.baseAddress!
            t.update(from: s, count: n)
            t[n] = 0
            let r = scanDouble(UnsafePointer(t), exactPowersOfTen)
            if r.end == UnsafePointer(t) + n {
                switch r.result {
                case .value: return r.value
                case .slow: return strtodWhole(t, n)
                case .invalid: return nil
                }
            }
            return special(UnsafePointer(t), n)
        }
    }

    private static func strtodWhole(_ t: UnsafeMutablePointer<UInt8>, _ n: Int) -> Double? {
        var endPtr: UnsafeMutablePointer<CChar>?
        let v = t.withMemoryRebound(to: CChar.self, capacity: n + 1) { c -> Double in
            strtod(c, &endPtr)
        }
        guard let endPtr else { return nil }
        let consumed = UnsafeRawPointer(endPtr) - UnsafeRawPointer(t)
        return consumed == n ? v : nil
    }

    /// "inf", "+inf", "-inf", "infinity" (any case).
    private static func special(_ s: UnsafePointer<UInt8>, _ n: Int) -> Double? {
        var p = s
        var count = n
        var negative = false
        if count > 0, p[0] == Ascii.minus || p[0] == Ascii.plus {
            negative = p[0] == Ascii.minus
            p += 1
            count -= 1
        }
        var lowered = [UInt8]()
        lowered.reserveCapacity(count)
        for i in 0..<count { lowered.append(p[i] | 0x20) }
        if lowered == Array("inf".utf8) || lowered == Array("infinity".utf8) {
            return negative ? -Double.infinity : Double.infinity
        }
        return nil
    }

    /// Parses a whole field as an Int64; nil when it is not an integer or overflows.
    static func int(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Int64? {
        let (s, e) = trimmed(start, end)
        let n = e - s
        if n == 0 || n > 32 { return nil }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n + 1) { tmp in
            let t = tmp.baseAddress!
            t.update(from: s, count: n)
            t[n] = 0
            let r = scanInt(UnsafePointer(t))
            return r.result == .value && r.end == UnsafePointer(t) + n ? r.value : nil
        }
    }

    /// true/false, yes/no, t/f, y/n (any case).
    static func bool(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool? {
        let (s, e) = trimmed(start, end)
        let n = e - s
        if n == 0 || n > 5 { return nil }
        var word: UInt64 = 0
        for i in 0..<n { word |= UInt64(s[i] | 0x20) << (8 * UInt64(i)) }
        switch word {
        case 0x65_7572_74, 0x7365_79, 0x74, 0x79: return true  // true yes t y
        case 0x65_736C_6166, 0x6F_6E, 0x66, 0x6E: return false  // false no f n
        default: return nil
        }
    }

    @inline(__always)
    private static func digits(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        var v = 0
        for i in 0..<n {
            let d = p[i] &- Ascii.zero
            if d > 9 { return nil }
            v = v * 10 + Int(d)
        }
        return v
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    private static func daysInMonth(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// `YYYY-MM-DD` → days since the epoch.
    @inline(__always)
    static func date(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Int32? {
        let (s, e) = trimmed(start, end)
        guard e - s == 10 else { return nil }
        return dateAt(s)
    }

    @inline(__always)
    static func dateAt(_ s: UnsafePointer<UInt8>) -> Int32? {
        guard s[4] == Ascii.minus, s[7] == Ascii.minus, let y = digits(s, 4), let m = digits(s + 5, 2),
              let d = digits(s + 8, 2), m >= 1, m <= 12, d >= 1, d <= daysInMonth(y, m) else { return nil }
        return Int32(daysFromCivil(y, m, d))
    }

    /// ISO 8601 `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]][Z|±HH[:]MM]` → microseconds since the epoch
    /// (UTC when an offset is given, otherwise the wall-clock time as if UTC). A bare date is
    /// midnight.
    static func datetime(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Int64? {
        let (s, e) = trimmed(start, end)
        let n = e - s
        guard n >= 10, let days = dateAt(s) else { return nil }
        var micros = Int64(days) * 86_400_000_000
        if n == 10 { return micros }
        guard n >= 16, s[10] == 0x54 || s[10] == 0x20 || s[10] == 0x74, s[13] == 0x3A,
              let hh = digits(s + 11, 2), let mm = digits(s + 14, 2), hh < 24, mm < 60 else { return nil }
        var seconds = hh * 3600 + mm * 60
        var p = s + 16
        if p < e, p[0] == 0x3A {
            guard e - p >= 3, let ss = digits(p + 1, 2), ss < 61 else { return nil }
            seconds += ss
            p += 3
            if p < e, p[0] == Ascii.dot || p[0] == 0x2C {
                p += 1
                var fraction: Int64 = 0
                var scale: Int64 = 100_000
                let fs = p
                while p < e, p[0] &- Ascii.zero <= 9 {
                    fraction += Int64(p[0] &- Ascii.zero) * scale
                    scale /= 10
                    p += 1
                }
                if p == fs { return nil }
                micros += fraction
            }
        }
        micros += Int64(seconds) * 1_000_000
        if p == e { return micros }
        if p[0] | 0x20 == 0x7A, p + 1 == e { return micros }  // Z
        if p[0] == Ascii.plus || p[0] == Ascii.minus {
            let sign: Int64 = p[0] == Ascii.minus ? -1 : 1
            p += 1
            guard e - p >= 2, let oh = digits(p, 2) else { return nil }
            p += 2
            if p < e, p[0] == 0x3A { p += 1 }
            var om = 0
            if p < e {
                guard e - p == 2, let m = digits(p, 2) else { return nil }
                om = m
                p += 2
            }
            guard p == e else { return nil }
            return micros - sign * Int64(oh * 3600 + om * 60) * 1_000_000
        }
        return nil
    }

    static func formatDate(days: Int) -> String {
        let (y, m, d) = civilFromDays(days)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    static func formatDatetime(micros: Int64) -> String {
        let days = Int((micros >= 0 ? micros : micros - 86_399_999_999) / 86_400_000_000)
        let rest = micros - Int64(days) * 86_400_000_000
        let secs = Int(rest / 1_000_000)
        let us = Int(rest % 1_000_000)
        var s = formatDate(days: days) + "T\(pad(secs / 3600, 2)):\(pad(secs / 60 % 60, 2)):\(pad(secs % 60, 2))"
        if us != 0 { s += "." + pad(us, 6) }
        return s
    }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(abs(v))
        return (v < 0 ? "-" : "") + String(repeating: "0", count: max(0, width - s.count)) + s
    }
}
