import Foundation

/// Sequential Huffman JPEG (Note [Image decoding]): ITU-T T.81 baseline and extended 8-bit,
/// interleaved and single-component scans, restart intervals, a float IDCT, nearest-neighbour chroma
/// upsampling and the JFIF YCbCr → RGB equations.
enum JPEGDecoder {
    struct Component {
        var id: Int
        var h: Int
        var v: Int
        var quant: Int
        var dcTable = 0
        var acTable = 0
        var predictor = 0
        /// Blocks per line and per column of this component's plane (whole MCUs).
        var blocksWide = 0
        var blocksHigh = 0
        var plane: [UInt8] = []
    }

    struct Huffman {
        var lookup: [Int: UInt8] = [:]  // (length << 16 | code) → symbol
        var maxCode = [Int](repeating: -1, count: 17)
        init() {}
        init(counts: [Int], symbols: [UInt8]) throws {
            var code = 0, k = 0
            for length in 1...16 {
                for _ in 0..<counts[length - 1] {
                    guard k < symbols.count else { throw ImageError("JPEG Huffman table lists more codes than symbols") }
                    lookup[length << 16 | code] = symbols[k]
                    code += 1
                    k += 1
                }
                maxCode[length] = code - 1
                guard code <= 1 << length else { throw ImageError("JPEG Huffman table is not a valid prefix code") }
                code <<= 1
            }
        }
    }

    struct BitReader {
        let bytes: [UInt8]
        var position: Int
        var buffer: UInt32 = 0
        var count = 0
        /// A marker was reached: no more entropy-coded bytes until it is dealt with.
        var atMarker = false

        mutating func fill() {
            while count <= 24 {
                var byte: UInt8 = 0
                if !atMarker, position < bytes.count {
                    byte = bytes[position]
                    if byte == 0xFF {
                        let next = position + 1 < bytes.count ? bytes[position + 1] : 0xD9
                        if next == 0x00 {
                            position += 2
                        } else {
                            atMarker = true
                            byte = 0
                        }
                    } else {
                        position += 1
                    }
                }
                buffer |= UInt32(byte) << UInt32(24 - count)
                count += 8
            }
        }

        mutating func bit() -> Int {
            if count == 0 { fill() }
            let b = Int(buffer >> 31)
            buffer <<= 1
            count -= 1
            return b
        }

        mutating func bits(_ n: Int) -> Int {
            guard n > 0 else { return 0 }
            if count < n { fill() }
            let v = Int(buffer >> UInt32(32 - n))
            buffer <<= UInt32(n)
            count -= n
            return v
        }

        mutating func decode(_ table: Huffman) throws -> Int {
            var code = 0
            for length in 1...16 {
                code = code << 1 | bit()
                if code <= table.maxCode[length], let symbol = table.lookup[length << 16 | code] { return Int(symbol) }
            }
            throw ImageError("JPEG entropy-coded data holds an invalid Huffman code (damaged file)")
        }

        /// Drops the bits left in the current byte and reads the restart marker that must follow.
        mutating func restart() throws {
            buffer = 0
            count = 0
            atMarker = false
            while position + 1 < bytes.count, bytes[position] == 0xFF, bytes[position + 1] == 0xFF { position += 1 }
            guard position + 1 < bytes.count, bytes[position] == 0xFF, (0xD0...0xD7).contains(bytes[position + 1]) else {
                throw ImageError("JPEG restart marker missing where the restart interval puts one (damaged file)")
            }
            position += 2
        }
    }

    static let zigzag: [Int] = [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
        28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
        47, 55, 62, 63,
    ]

    /// cosines[x * 8 + u] = C(u) · cos((2x + 1) u π / 16) / 2.
    static let cosines: [Float] = (0..<64).map { i in
        let x = i / 8, u = i % 8
        let c = u == 0 ? 1 / Float(2).squareRoot() : 1
        return c * Float(cos(Double(2 * x + 1) * Double(u) * Double.pi / 16)) / 2
    }

    static func decode(_ bytes: [UInt8]) throws -> DecodedImage {
        var quant = [[Int]](repeating: [], count: 4)
        var dc = [Huffman](repeating: Huffman(), count: 4)
        var ac = [Huffman](repeating: Huffman(), count: 4)
        var dcDefined = [Bool](repeating: false, count: 4), acDefined = dcDefined
        var components: [Component] = []
        var width = 0, height = 0
        var restartInterval = 0
        var adobeTransform: Int?
        var hMax = 1, vMax = 1, mcusWide = 0, mcusHigh = 0
        var scans = 0
        var offset = 2

        func u16(_ i: Int) throws -> Int {
            guard i + 1 < bytes.count else { throw ImageError("JPEG ends inside a marker segment (truncated?)") }
            return Int(bytes[i]) << 8 | Int(bytes[i + 1])
        }

        markers: while offset < bytes.count {
            guard bytes[offset] == 0xFF else { throw ImageError("JPEG: expected a marker at byte \(offset) (damaged file)") }
            while offset < bytes.count, bytes[offset] == 0xFF { offset += 1 }
            guard offset < bytes.count else { break }
            let marker = bytes[offset]
            offset += 1
            if marker == 0xD9 { break }
            if (0xD0...0xD7).contains(marker) || marker == 0x01 { continue }
            let length = try u16(offset)
            guard length >= 2, offset + length <= bytes.count else { throw ImageError("JPEG marker segment runs past the end of the file (truncated?)") }
            let segment = Array(bytes[offset + 2..<offset + length])
            offset += length
            switch marker {
            case 0xC0, 0xC1:
                guard segment.count >= 6 else { throw ImageError("JPEG frame header too short") }
                guard segment[0] == 8 else { throw ImageError("\(segment[0])-bit JPEG samples are not supported (8-bit only)") }
                height = Int(segment[1]) << 8 | Int(segment[2])
                width = Int(segment[3]) << 8 | Int(segment[4])
                let n = Int(segment[5])
                guard width > 0, height > 0 else { throw ImageError("JPEG without a height in its frame header (DNL) is not supported") }
                guard n == 1 || n == 3 else {
                    throw ImageError("JPEG with \(n) components (\(n == 4 ? "CMYK" : "unusual")) is not supported: save it as RGB or greyscale")
                }
                guard segment.count >= 6 + 3 * n else { throw ImageError("JPEG frame header too short") }
                for c in 0..<n {
                    let hv = Int(segment[7 + c * 3])
                    let comp = Component(id: Int(segment[6 + c * 3]), h: hv >> 4, v: hv & 15, quant: Int(segment[8 + c * 3]) & 3)
                    guard (1...4).contains(comp.h), (1...4).contains(comp.v) else { throw ImageError("JPEG sampling factors out of range") }
                    components.append(comp)
                }
                hMax = components.map(\.h).max()!
                vMax = components.map(\.v).max()!
                mcusWide = (width + 8 * hMax - 1) / (8 * hMax)
                mcusHigh = (height + 8 * vMax - 1) / (8 * vMax)
                for i in components.indices {
                    components[i].blocksWide = mcusWide * components[i].h
                    components[i].blocksHigh = mcusHigh * components[i].v
                    components[i].plane = [UInt8](repeating: 0, count: components[i].blocksWide * 8 * components[i].blocksHigh * 8)
                }
            case 0xC2, 0xC6, 0xCA, 0xCE:
                throw ImageError("progressive JPEG is not supported: save it as baseline (sequential) JPEG or PNG")
            case 0xC3, 0xC5, 0xC7, 0xC9, 0xCB, 0xCD, 0xCF:
                throw ImageError("lossless, hierarchical or arithmetic-coded JPEG is not supported: save it as baseline JPEG or PNG")
            case 0xC4:
                var i = 0
                while i < segment.count {
                    guard i + 17 <= segment.count else { throw ImageError("JPEG Huffman table segment too short") }
                    let tc = Int(segment[i]) >> 4, th = Int(segment[i]) & 15
                    guard tc <= 1, th <= 3 else { throw ImageError("JPEG Huffman table class/id out of range") }
                    let counts = (0..<16).map { Int(segment[i + 1 + $0]) }
                    let total = counts.reduce(0, +)
                    guard i + 17 + total <= segment.count else { throw ImageError("JPEG Huffman table segment too short") }
                    let table = try Huffman(counts: counts, symbols: Array(segment[i + 17..<i + 17 + total]))
                    if tc == 0 { dc[th] = table; dcDefined[th] = true } else { ac[th] = table; acDefined[th] = true }
                    i += 17 + total
                }
            case 0xDB:
                var i = 0
                while i < segment.count {
                    let precision = Int(segment[i]) >> 4, id = Int(segment[i]) & 15
                    guard id <= 3 else { throw ImageError("JPEG quantisation table id out of range") }
                    let size = precision == 0 ? 64 : 128
                    guard i + 1 + size <= segment.count else { throw ImageError("JPEG quantisation table segment too short") }
                    quant[id] = (0..<64).map { k in
                        precision == 0 ? Int(segment[i + 1 + k]) : Int(segment[i + 1 + 2 * k]) << 8 | Int(segment[i + 2 + 2 * k])
                    }
                    i += 1 + size
                }
            case 0xDD:
                guard segment.count >= 2 else { throw ImageError("JPEG restart interval segment too short") }
                restartInterval = Int(segment[0]) << 8 | Int(segment[1])
            case 0xEE:
                if segment.count >= 12, segment.starts(with: Array("Adobe".utf8)) { adobeTransform = Int(segment[11]) }
            case 0xDA:
                guard !components.isEmpty else { throw ImageError("JPEG scan before its frame header") }
                let n = Int(segment[0])
                guard n >= 1, segment.count >= 1 + 2 * n + 3 else { throw ImageError("JPEG scan header too short") }
                var members: [Int] = []
                for s in 0..<n {
                    let id = Int(segment[1 + 2 * s]), tables = Int(segment[2 + 2 * s])
                    guard let index = components.firstIndex(where: { $0.id == id }) else { throw ImageError("JPEG scan names an unknown component \(id)") }
                    components[index].dcTable = tables >> 4 & 3
                    components[index].acTable = tables & 3
                    guard dcDefined[components[index].dcTable], acDefined[components[index].acTable] else {
                        throw ImageError("JPEG scan uses a Huffman table that was never defined")
                    }
                    guard !quant[components[index].quant].isEmpty else { throw ImageError("JPEG component uses a quantisation table that was never defined") }
                    members.append(index)
                }
                var reader = BitReader(bytes: bytes, position: offset)
                try decodeScan(&reader, &components, members: members, dc: dc, ac: ac, quant: quant, restartInterval: restartInterval,
                               mcusWide: mcusWide, mcusHigh: mcusHigh, hMax: hMax, vMax: vMax, width: width, height: height)
                scans += 1
                // Continue at the marker that ends the entropy-coded data.
                offset = reader.position
                while offset + 1 < bytes.count && !(bytes[offset] == 0xFF && bytes[offset + 1] != 0 && !(0xD0...0xD7).contains(bytes[offset + 1])) {
                    offset += 1
                }
                if offset + 1 >= bytes.count { break markers }
            default:
                break
            }
        }
        guard !components.isEmpty else { throw ImageError("JPEG without a supported frame header") }
        guard scans > 0 else { throw ImageError("JPEG without image data (truncated?)") }

        // Planes to pixels: upsample by repetition, then colour.
        let n = components.count
        var out = [UInt8](repeating: 0, count: width * height * n)
        for (c, comp) in components.enumerated() {
            let planeWidth = comp.blocksWide * 8
            for y in 0..<height {
                let sy = y * comp.v / vMax
                for x in 0..<width {
                    out[(y * width + x) * n + c] = comp.plane[sy * planeWidth + x * comp.h / hMax]
                }
            }
        }
        let rgbStored = adobeTransform == 0 || (n == 3 && components.map(\.id) == [82, 71, 66])
        if n == 3 && !rgbStored {
            for i in stride(from: 0, to: out.count, by: 3) {
                let y = Float(out[i]), cb = Float(out[i + 1]) - 128, cr = Float(out[i + 2]) - 128
                out[i] = clamp(y + 1.402 * cr)
                out[i + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr)
                out[i + 2] = clamp(y + 1.772 * cb)
            }
        }
        return DecodedImage(width: width, height: height, channels: n, pixels: out)
    }

    static func clamp(_ v: Float) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }

    static func decodeScan(_ reader: inout BitReader, _ components: inout [Component], members: [Int], dc: [Huffman], ac: [Huffman],
                           quant: [[Int]], restartInterval: Int, mcusWide: Int, mcusHigh: Int, hMax: Int, vMax: Int,
                           width: Int, height: Int) throws {
        for m in members { components[m].predictor = 0 }
        var block = [Float](repeating: 0, count: 64)
        var pixels = [Float](repeating: 0, count: 64)

        func decodeBlock(_ m: Int, row: Int, column: Int) throws {
            for i in 0..<64 { block[i] = 0 }
            let q = quant[components[m].quant]
            let t = try reader.decode(dc[components[m].dcTable])
            guard t <= 11 else { throw ImageError("JPEG DC difference of \(t) bits (damaged file)") }
            components[m].predictor += extend(reader.bits(t), t)
            block[0] = Float(components[m].predictor * q[0])
            var k = 1
            let acTable = ac[components[m].acTable]
            while k < 64 {
                let rs = try reader.decode(acTable)
                let r = rs >> 4, s = rs & 15
                if s == 0 {
                    if r == 15 { k += 16; continue }
                    break
                }
                k += r
                guard k < 64 else { throw ImageError("JPEG block has more than 64 coefficients (damaged file)") }
                block[zigzag[k]] = Float(extend(reader.bits(s), s) * q[k])
                k += 1
            }
            idct(block, into: &pixels)
            let planeWidth = components[m].blocksWide * 8
            let base = row * 8 * planeWidth + column * 8
            components[m].plane.withUnsafeMutableBufferPointer { plane in
                for y in 0..<8 {
                    for x in 0..<8 { plane[base + y * planeWidth + x] = clamp(pixels[y * 8 + x] + 128) }
                }
            }
        }

        var mcu = 0
        func restartIfDue() throws {
            if restartInterval > 0, mcu > 0, mcu % restartInterval == 0 {
                try reader.restart()
                for m in members { components[m].predictor = 0 }
            }
        }
        if members.count == 1 {
            // A single-component scan: its blocks one by one, only those covering the image.
            let m = members[0]
            let wide = (((width * components[m].h + hMax - 1) / hMax) + 7) / 8
            let high = (((height * components[m].v + vMax - 1) / vMax) + 7) / 8
            for row in 0..<high {
                for column in 0..<wide {
                    try restartIfDue()
                    try decodeBlock(m, row: row, column: column)
                    mcu += 1
                }
            }
        } else {
            for my in 0..<mcusHigh {
                for mx in 0..<mcusWide {
                    try restartIfDue()
                    for m in members {
                        for by in 0..<components[m].v {
                            for bx in 0..<components[m].h {
                                try decodeBlock(m, row: my * components[m].v + by, column: mx * components[m].h + bx)
                            }
                        }
                    }
                    mcu += 1
                }
            }
        }
    }

    /// The JPEG sign extension of an s-bit magnitude (T.81 F.2.2.1).
    static func extend(_ v: Int, _ s: Int) -> Int {
        s == 0 ? 0 : v < 1 << (s - 1) ? v - (1 << s) + 1 : v
    }

    /// Separable float inverse DCT of one 8×8 block (natural order) without the +128 level shift.
    static func idct(_ input: [Float], into output: inout [Float]) {
        var temp = [Float](repeating: 0, count: 64)
        let c = cosines
        // Rows: temp[y][x] = Σ_u c[x][u] · in[y][u]
        for y in 0..<8 {
            for x in 0..<8 {
                var s: Float = 0
                for u in 0..<8 { s += c[x * 8 + u] * input[y * 8 + u] }
                temp[y * 8 + x] = s
            }
        }
        // Columns.
        for x in 0..<8 {
            for y in 0..<8 {
                var s: Float = 0
                for v in 0..<8 { s += c[y * 8 + v] * temp[v * 8 + x] }
                output[y * 8 + x] = s
            }
        }
    }
}
