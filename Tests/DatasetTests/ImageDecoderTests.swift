import Foundation
import NebulaImage
import Testing

/// The PNG and JPEG decoders against Pillow's pixels for the same files (Tests/Data/images, made by
/// make-fixtures.py): PNGs exactly, JPEGs within the differences two correct decoders may have (IDCT
/// rounding; Pillow's libjpeg interpolates subsampled chroma, Nebula repeats it).
@Suite("Image decoding")
struct ImageDecoderTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Data/images")

    struct Reference: Decodable {
        var width: Int
        var height: Int
        var channels: Int
        var pixels: String
        var exact: Bool
    }

    static let references: [String: Reference] = {
        let data = (try? Data(contentsOf: dir.appendingPathComponent("reference.json"))) ?? Data()
        return (try? JSONDecoder().decode([String: Reference].self, from: data)) ?? [:]
    }()

    func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: Self.dir.appendingPathComponent(name))) }

    @Test(arguments: ["rgb8.png", "rgba8.png", "grey8.png", "grey-alpha8.png", "grey1.png", "palette.png", "grey16.png",
                      "rgb-444.jpg", "rgb-420.jpg", "grey.jpg", "rgb-restart.jpg"])
    func decodesLikePillow(_ name: String) throws {
        let reference = try #require(Self.references[name], "no reference for \(name)")
        let image = try ImageDecoder.decode(try bytes(name), source: name)
        #expect(image.width == reference.width && image.height == reference.height && image.channels == reference.channels)
        let expected = Array(try #require(Data(base64Encoded: reference.pixels)))
        try #require(image.pixels.count == expected.count)
        if reference.exact {
            #expect(image.pixels == expected)
        } else {
            func compare(_ a: [UInt8], _ b: [UInt8], mean limit: Double, max maxLimit: Int, _ what: String) {
                let diffs = zip(a, b).map { abs(Int($0) - Int($1)) }
                let mean = Double(diffs.reduce(0, +)) / Double(diffs.count)
                #expect(mean <= limit && diffs.max()! <= maxLimit, "\(name) \(what): mean |Δ| \(mean), max \(diffs.max()!)")
            }
            if name.contains("420") || name.contains("restart") {
                // Luma is stored at full resolution: it must agree closely. The colours then differ by how
                // each decoder fills in the subsampled chroma (this image's blue is a fast sine on purpose).
                let reference = DecodedImage(width: image.width, height: image.height, channels: 3, pixels: expected)
                compare(image.converted(to: 1).pixels, reference.converted(to: 1).pixels, mean: 2.5, max: 20, "luma")
                compare(image.pixels, expected, mean: 16, max: 90, "RGB")
            } else {
                compare(image.pixels, expected, mean: 1.5, max: 8, "pixels")
            }
        }
    }

    @Test func refusesWhatItCannotRead() throws {
        func message(_ bytes: [UInt8], _ name: String = "x") -> String {
            do {
                _ = try ImageDecoder.decode(bytes, source: name)
                return ""
            } catch let e as ImageError {
                return e.message
            } catch {
                return "\(error)"
            }
        }
        #expect(message(try bytes("progressive.jpg"), "p.jpg").contains("p.jpg: progressive JPEG is not supported"))
        #expect(message(try bytes("cmyk.jpg")).contains("CMYK"))
        #expect(message(Array("hello".utf8)).contains("not a PNG or JPEG"))
        let png = try bytes("rgb8.png")
        #expect(message(Array(png.prefix(png.count / 2))).contains("truncated") || message(Array(png.prefix(png.count / 2))).contains("past the end"))
        var damaged = png
        damaged[40] ^= 0xFF  // inside IHDR's successor: a CRC no longer matches
        #expect(message(damaged).contains("CRC"))
        let jpeg = try bytes("rgb-444.jpg")
        #expect(!message(Array(jpeg.prefix(40))).isEmpty)
        var garbled = jpeg
        for i in (jpeg.count - 200)..<(jpeg.count - 2) { garbled[i] = 0xFF &- garbled[i] }
        // a garbled entropy-coded segment decodes to something or fails, but never crashes
        _ = message(garbled)
    }

    @Test func resizeAndChannels() {
        let image = DecodedImage(width: 2, height: 2, channels: 1, pixels: [0, 100, 200, 40])
        #expect(image.resized(side: 1).pixels == [85])
        #expect(image.resized(side: 4).pixels == [0, 0, 100, 100, 0, 0, 100, 100, 200, 200, 40, 40, 200, 200, 40, 40])
        let rgb = DecodedImage(width: 1, height: 2, channels: 3, pixels: [255, 0, 0, 10, 10, 10])
        #expect(!rgb.isGrey && rgb.converted(to: 1).pixels == [76, 10])
        #expect(DecodedImage(width: 1, height: 1, channels: 3, pixels: [7, 7, 7]).isGrey)
        #expect(image.converted(to: 3).pixels.count == 12)
    }
}
