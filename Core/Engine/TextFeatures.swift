/// 64-bit FNV-1a (Fowler–Noll–Vo, variant 1a): `h = 0xcbf29ce484222325`; for each byte
/// `h = (h XOR byte) · 0x100000001b3 (mod 2^64)`. Defined on bytes only, so the same input gives the
/// same hash on every machine, OS, endianness and run (unlike Swift's `Hasher`, which is seeded per
/// process).
public struct FNV1a64: Sendable, Equatable {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01b3

    public private(set) var value: UInt64 = FNV1a64.offsetBasis

    public init() {}

    @inline(__always)
    public mutating func combine(_ byte: UInt8) {
        value = (value ^ UInt64(byte)) &* FNV1a64.prime
    }

    @inline(__always)
    public mutating func combine(_ bytes: UnsafeBufferPointer<UInt8>) {
        var h = value
        var i = 0
        while i < bytes.count {
            h = (h ^ UInt64(bytes[i])) &* FNV1a64.prime
            i += 1
        }
        value = h
    }

    public static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h = FNV1a64()
        for b in bytes { h.combine(b) }
        return h.value
    }

    public static func hash(_ string: String) -> UInt64 { hash(string.utf8) }
}

/// fastText-style hashed text features: word unigrams, word bigrams and character n-grams of each
/// word, each hashed into one of `buckets` rows of an embedding table.
///
/// Tokenisation (`tokenize`):
/// 1. The text is lower-cased with `String.lowercased()` (Unicode default case mapping from the
///    standard library's own tables; no locale).
/// 2. It is read as Unicode scalars. A *word character* is a scalar that is alphabetic
///    (`properties.isAlphabetic`) or numeric (`properties.numericType != nil`). Maximal runs of word
///    characters are tokens. An apostrophe (U+0027 or U+2019) with a word character on both sides
///    stays inside the token and is written as U+0027 ("don't", "it's").
/// 3. `!` and `?` are tokens of their own (they carry sentiment); every other scalar (space,
///    punctuation, symbols) only separates tokens.
///
/// Features of a text with tokens t₁ … tₙ, each hashed with FNV-1a 64 (`FNV1a64`) over a tag byte
/// followed by UTF-8 bytes, and reduced to `hash % buckets`:
/// - unigram tᵢ: `0x01, utf8(tᵢ)`;
/// - bigram (tᵢ, tᵢ₊₁): `0x02, utf8(tᵢ), 0x20, utf8(tᵢ₊₁)`;
/// - character n-gram g of `"<" + tᵢ + ">"` for every length n in `characterNGrams` (counted in
///   Unicode scalars, all start positions, boundary markers included, as fastText): `0x03, utf8(g)`.
///   `!` and `?` get no character n-grams.
/// The tag bytes keep the three kinds apart ("ab" the word is not "ab" the n-gram). Repeated features
/// are kept (a mean-pooled bag weighs them by count). A text with no tokens has no features.
public struct TextFeaturizer: Sendable {
    public struct Configuration: Sendable, Equatable, Codable {
        /// Rows of the embedding table the features are hashed into (fastText's `-bucket`, 2^20 here).
        public var buckets: Int
        public var wordUnigrams: Bool
        public var wordBigrams: Bool
        /// Lengths of character n-grams, nil for none (fastText's `-minn 3 -maxn 5` by default).
        public var characterNGrams: ClosedRange<Int>?

        public init(buckets: Int = 1 << 20, wordUnigrams: Bool = true, wordBigrams: Bool = true,
                    characterNGrams: ClosedRange<Int>? = 3...5) {
            precondition(buckets > 0 && buckets <= Int(Int32.max), "TextFeaturizer: buckets must be in 1...Int32.max")
            precondition(characterNGrams.map { $0.lowerBound >= 1 } ?? true, "TextFeaturizer: n-gram lengths start at 1")
            self.buckets = buckets
            self.wordUnigrams = wordUnigrams
            self.wordBigrams = wordBigrams
            self.characterNGrams = characterNGrams
        }
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration = Configuration()) { self.configuration = configuration }

    static let unigramTag: UInt8 = 0x01
    static let bigramTag: UInt8 = 0x02
    static let characterTag: UInt8 = 0x03

    /// The tokens of `text` under the rules above.
    public static func tokenize(_ text: String) -> [String] {
        var tokens: [String] = []
        var current = String.UnicodeScalarView()
        let scalars = Array(text.lowercased().unicodeScalars)
        func flush() {
            if !current.isEmpty {
                tokens.append(String(current))
                current = String.UnicodeScalarView()
            }
        }
        var i = 0
        while i < scalars.count {
            let s = scalars[i]
            if isWordScalar(s) {
                current.append(s)
            } else if (s == "'" || s == "\u{2019}") && !current.isEmpty && i + 1 < scalars.count
                        && isWordScalar(scalars[i + 1]) {
                current.append("'")
            } else {
                flush()
                if s == "!" || s == "?" { tokens.append(String(Character(s))) }
            }
            i += 1
        }
        flush()
        return tokens
    }

    @inline(__always)
    static func isWordScalar(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII {
            let v = s.value
            return (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A)
        }
        return s.properties.isAlphabetic || s.properties.numericType != nil
    }

    /// Bucket ids of every feature of `text`, in order: unigrams, bigrams, then each word's n-grams.
    public func features(_ text: String) -> [Int32] {
        var out: [Int32] = []
        append(text, to: &out)
        return out
    }

    /// The features of `texts` as EmbeddingBag input: bag `i` is text `i`.
    public func encode(_ texts: some Sequence<String>) -> TextBatch {
        var indices: [Int32] = []
        var offsets: [Int] = []
        for t in texts {
            offsets.append(indices.count)
            append(t, to: &indices)
        }
        return TextBatch(indices: indices, offsets: offsets)
    }

    private func append(_ text: String, to out: inout [Int32]) {
        let tokens = TextFeaturizer.tokenize(text).map { Array($0.utf8) }
        let buckets = UInt64(configuration.buckets)
        func emit(_ h: FNV1a64) { out.append(Int32(truncatingIfNeeded: h.value % buckets)) }
        if configuration.wordUnigrams {
            for t in tokens {
                var h = FNV1a64()
                h.combine(TextFeaturizer.unigramTag)
                t.withUnsafeBufferPointer { h.combine($0) }
                emit(h)
            }
        }
        if configuration.wordBigrams && tokens.count > 1 {
            for i in 0..<(tokens.count - 1) {
                var h = FNV1a64()
                h.combine(TextFeaturizer.bigramTag)
                tokens[i].withUnsafeBufferPointer { h.combine($0) }
                h.combine(0x20)
                tokens[i + 1].withUnsafeBufferPointer { h.combine($0) }
                emit(h)
            }
        }
        guard let lengths = configuration.characterNGrams else { return }
        var word: [UInt8] = []
        var starts: [Int] = []  // byte offset of each scalar in `word`, plus the end
        for t in tokens where !(t.count == 1 && (t[0] == UInt8(ascii: "!") || t[0] == UInt8(ascii: "?"))) {
            word.removeAll(keepingCapacity: true)
            starts.removeAll(keepingCapacity: true)
            word.append(UInt8(ascii: "<"))
            word.append(contentsOf: t)
            word.append(UInt8(ascii: ">"))
            for (j, b) in word.enumerated() where b & 0xC0 != 0x80 { starts.append(j) }  // not a continuation byte
            starts.append(word.count)
            let scalarCount = starts.count - 1
            word.withUnsafeBufferPointer { wb in
                var i = 0
                while i < scalarCount {
                    var n = lengths.lowerBound
                    while n <= lengths.upperBound && i + n <= scalarCount {
                        var h = FNV1a64()
                        h.combine(TextFeaturizer.characterTag)
                        h.combine(UnsafeBufferPointer(rebasing: wb[starts[i]..<starts[i + n]]))
                        emit(h)
                        n += 1
                    }
                    i += 1
                }
            }
        }
    }
}

/// Texts as EmbeddingBag input: `indices` (bucket ids of all texts, concatenated) and `offsets`
/// (where each text's ids start). Encode a data set once and take batches with `subset`.
public struct TextBatch: Sendable, Equatable {
    public var indices: [Int32]
    public var offsets: [Int]

    public init(indices: [Int32], offsets: [Int]) {
        self.indices = indices
        self.offsets = offsets
    }

    public var count: Int { offsets.count }

    /// The ids of text `i`.
    public func range(_ i: Int) -> Range<Int> { offsets[i]..<(i + 1 < offsets.count ? offsets[i + 1] : indices.count) }

    /// Texts `rows`, in that order (batch gathering).
    public func subset(_ rows: some Collection<Int>) -> TextBatch {
        var out = TextBatch(indices: [], offsets: [])
        out.offsets.reserveCapacity(rows.count)
        for r in rows {
            out.offsets.append(out.indices.count)
            out.indices.append(contentsOf: indices[range(r)])
        }
        return out
    }
}
