import NebulaEngine
import Testing

@Suite("Text features: FNV-1a 64, tokenisation, hashed n-grams")
struct TextFeaturesTests {
    /// Reference values of the FNV-1a 64 specification.
    @Test func fnv1a64KnownValues() {
        #expect(FNV1a64.hash("") == 0xcbf2_9ce4_8422_2325)
        #expect(FNV1a64.hash("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(FNV1a64.hash("foobar") == 0x8594_4171_f739_67e8)
        var h = FNV1a64()
        Array("foobar".utf8).withUnsafeBufferPointer { h.combine($0) }
        #expect(h.value == FNV1a64.hash("foobar"))
    }

    @Test(arguments: [
        ("Don't PANIC!", ["don't", "panic", "!"]),
        ("A three-hour cinema master class.", ["a", "three", "hour", "cinema", "master", "class"]),
        ("it’s 'quoted' -- really?!", ["it's", "quoted", "really", "?", "!"]),
        ("Café  NOÉL, 2nd... ", ["café", "noél", "2nd"]),
        ("  ", []),
        ("''", []),
    ])
    func tokenisation(_ text: String, _ expected: [String]) {
        #expect(TextFeaturizer.tokenize(text) == expected)
    }

    /// Pinned bucket ids (computed independently from the documented rules): any change to the
    /// tokeniser or the hashing scheme shows up here, and would invalidate trained models.
    @Test func featuresArePinned() {
        let f = TextFeaturizer(.init(buckets: 1 << 20))
        #expect(f.features("Don't PANIC!") == [
            1034802, 380215, 546839, 39066, 763591, 800671, 200323, 123052, 554811, 156820, 92320, 790788, 106832,
            347626, 255655, 54779, 254093, 893309, 570185, 548704, 796113, 268200, 290289, 1032804, 438757, 14113,
            672492, 1018582, 240680,
        ])
        // Character n-grams are counted in Unicode scalars ("é" is one), over "<café>".
        let small = TextFeaturizer(.init(buckets: 1000, wordBigrams: false))
        #expect(small.features("Café") == [562, 886, 352, 480, 288, 368, 666, 825, 757, 734])
    }

    @Test func configurationSelectsFeatureKinds() {
        let text = "the movie was good"
        let words = TextFeaturizer(.init(buckets: 1 << 16, wordBigrams: false, characterNGrams: nil))
        let both = TextFeaturizer(.init(buckets: 1 << 16, characterNGrams: nil))
        let chars = TextFeaturizer(.init(buckets: 1 << 16, wordUnigrams: false, wordBigrams: false, characterNGrams: 3...3))
        #expect(words.features(text).count == 4)
        #expect(both.features(text).count == 7)
        #expect(Array(both.features(text).prefix(4)) == words.features(text))
        // "<the>" 3, "<movie>" 5, "<was>" 3, "<good>" 4 trigrams.
        #expect(chars.features(text).count == 15)
        #expect(TextFeaturizer().features("").isEmpty)
        #expect(TextFeaturizer().features("the") != TextFeaturizer().features("The!"))
        #expect(TextFeaturizer().features("the") == TextFeaturizer().features("THE"))
    }

    @Test func encodeAndSubset() {
        let f = TextFeaturizer(.init(buckets: 97, characterNGrams: nil))
        let batch = f.encode(["good film", "", "bad", "very bad film"])
        #expect(batch.count == 4)
        #expect(batch.offsets == [0, 3, 3, 4])
        #expect(batch.indices.count == 9)
        #expect(batch.indices.allSatisfy { $0 >= 0 && $0 < 97 })
        let sub = batch.subset([3, 0])
        #expect(sub.offsets == [0, 5])
        #expect(sub.indices == Array(batch.indices[4...]) + Array(batch.indices[0..<3]))
        #expect(sub == f.encode(["very bad film", "good film"]))
    }
}
