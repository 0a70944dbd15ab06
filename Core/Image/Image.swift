// Note [Image decoding]
// ~~~~~~~~~~~~~~~~~~~~~
// The builder turns image-folder datasets into pixel tables (Note [Images as pixel tables] in the
// coordinator's BuilderService), so Nebula reads the two formats those datasets hold itself:
//   PNG: every colour type (grey, RGB, palette, grey+alpha, RGBA) at every bit depth, non-interlaced;
//        the zlib stream is inflated by zlib, the scanline filters undone here; alpha is dropped
//        (composited over black would change the pixels a model sees, so it is simply left out).
//   JPEG: baseline and extended sequential Huffman DCT (SOF0/SOF1), 8-bit, 1 or 3 components, any
//        sampling factors up to 4, restart intervals; Adobe/JFIF YCbCr to RGB (JFIF equations).
//        Progressive (SOF2), lossless and arithmetic-coded files are refused with that reason.
// Anything else is refused with what the file is. Every decoder error names the file.

/// A decoded image: 8-bit samples, row-major, interleaved channels (1: grey, 3: RGB).
public struct DecodedImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "pixel buffer does not match \(width)×\(height)×\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// Whether every pixel has R = G = B (a grey image stored as RGB).
    public var isGrey: Bool {
        guard channels == 3 else { return true }
        var i = 0
        while i < pixels.count {
            if pixels[i] != pixels[i + 1] || pixels[i] != pixels[i + 2] { return false }
            i += 3
        }
        return true
    }

    /// The same image with `channels` channels: grey from RGB by ITU-R BT.601 luma, RGB from grey by copying.
    public func converted(to target: Int) -> DecodedImage {
        precondition(target == 1 || target == 3)
        if target == channels { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * target)
        if target == 1 {
            for i in 0..<n {
                let r = Double(pixels[i * 3]), g = Double(pixels[i * 3 + 1]), b = Double(pixels[i * 3 + 2])
                out[i] = UInt8(min(255, (0.299 * r + 0.587 * g + 0.114 * b).rounded()))
            }
        } else {
            for i in 0..<n { out[i * 3] = pixels[i]; out[i * 3 + 1] = pixels[i]; out[i * 3 + 2] = pixels[i] }
        }
        return DecodedImage(width: width, height: height, channels: target, pixels: out)
    }

    /// The image resampled to `side` × `side` (the whole image, aspect ratio not kept) by area
    /// averaging: each output pixel is the mean of the source area it covers, weighted by overlap, so
    /// shrinking does not alias and enlarging repeats pixels.
    public func resized(side: Int) -> DecodedImage {
        precondition(side >= 1)
        if width == side && height == side { return self }
        let sx = Double(width) / Double(side), sy = Double(height) / Double(side)
        var out = [UInt8](repeating: 0, count: side * side * channels)
        var sums = [Double](repeating: 0, count: channels)
        for oy in 0..<side {
            let y0 = Double(oy) * sy, y1 = y0 + sy
            for ox in 0..<side {
                let x0 = Double(ox) * sx, x1 = x0 + sx
                for c in 0..<channels { sums[c] = 0 }
                var area = 0.0
                var y = Int(y0)
                while Double(y) < y1 && y < height {
                    let wy = min(y1, Double(y + 1)) - max(y0, Double(y))
                    var x = Int(x0)
                    while Double(x) < x1 && x < width {
                        let w = wy * (min(x1, Double(x + 1)) - max(x0, Double(x)))
                        if w > 0 {
                            let base = (y * width + x) * channels
                            for c in 0..<channels { sums[c] += w * Double(pixels[base + c]) }
                            area += w
                        }
                        x += 1
                    }
                    y += 1
                }
                let base = (oy * side + ox) * channels
                for c in 0..<channels { out[base + c] = UInt8(min(255, max(0, (sums[c] / max(area, 1e-12)).rounded()))) }
            }
        }
        return DecodedImage(width: side, height: side, channels: channels, pixels: out)
    }
}

/// Why an image could not be read.
public struct ImageError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

public enum ImageDecoder {
    /// Width, height and stored channels (1 grey, 3 colour) from a PNG's or JPEG's header, without
    /// decoding the pixels; nil when the bytes are neither or the header is not found.
    public static func header(_ bytes: [UInt8]) -> (width: Int, height: Int, channels: Int)? {
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), bytes.count >= 26 {
            let w = Int(PNGDecoder.be32(bytes, 16)), h = Int(PNGDecoder.be32(bytes, 20))
            return (w, h, bytes[25] == 0 || bytes[25] == 4 ? 1 : 3)
        }
        guard bytes.starts(with: [0xFF, 0xD8]) else { return nil }
        var i = 2
        while i + 9 < bytes.count {
            guard bytes[i] == 0xFF else { return nil }
            let marker = bytes[i + 1]
            if marker == 0xFF { i += 1; continue }
            let length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            if (0xC0...0xCF).contains(marker), marker != 0xC4, marker != 0xC8, marker != 0xCC {
                let h = Int(bytes[i + 5]) << 8 | Int(bytes[i + 6]), w = Int(bytes[i + 7]) << 8 | Int(bytes[i + 8])
                return (w, h, bytes[i + 9] == 1 ? 1 : 3)
            }
            i += 2 + length
        }
        return nil
    }

    /// Decodes a PNG or JPEG file's bytes (Note [Image decoding]); `source` names the file in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws -> DecodedImage {
        do {
            if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try PNGDecoder.decode(bytes) }
            if bytes.starts(with: [0xFF, 0xD8]) { return try JPEGDecoder.decode(bytes) }
        } catch let error as ImageError {
            throw ImageError("\(source): \(error.message)")
        }
        throw ImageError("\(source): not a PNG or JPEG file")
    }
}
