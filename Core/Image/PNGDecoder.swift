import CZlib

/// PNG (Note [Image decoding]): chunks checked for length and CRC, IDAT inflated by zlib, filters
/// undone, samples brought to 8 bits; grey(+alpha) gives 1 channel, RGB(A) and palette 3.
enum PNGDecoder {
    static func decode(_ bytes: [UInt8]) throws -> DecodedImage {
        var offset = 8
        var width = 0, height = 0, depth = 0, colorType = -1
        var palette: [UInt8] = []
        var idat: [UInt8] = []
        var sawEnd = false
        while offset + 8 <= bytes.count {
            let length = Int(be32(bytes, offset))
            let type = String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self)
            guard length <= bytes.count - offset - 12 else { throw ImageError("PNG chunk \(type) runs past the end of the file (truncated?)") }
            let data = Array(bytes[offset + 8..<offset + 8 + length])
            let stored = be32(bytes, offset + 8 + length)
            let computed = bytes[offset + 4..<offset + 8 + length].withContiguousStorageIfAvailable {
                UInt32(crc32(0, $0.baseAddress, uInt($0.count)))
            } ?? 0
            guard stored == computed else { throw ImageError("PNG chunk \(type) fails its CRC (damaged file)") }
            switch type {
            case "IHDR":
                guard length == 13 else { throw ImageError("PNG header has \(length) bytes, not 13") }
                width = Int(be32(data, 0))
                height = Int(be32(data, 4))
                depth = Int(data[8])
                colorType = Int(data[9])
                guard data[10] == 0, data[11] == 0 else { throw ImageError("PNG with an unknown compression or filter method") }
                guard data[12] == 0 else { throw ImageError("interlaced (Adam7) PNG is not supported: save it non-interlaced") }
            case "PLTE": palette = data
            case "IDAT": idat += data
            case "IEND": sawEnd = true
            default: break
            }
            offset += 12 + length
            if sawEnd { break }
        }
        guard colorType >= 0 else { throw ImageError("PNG without a header chunk") }
        guard width > 0, height > 0, width <= 1 << 15, height <= 1 << 15 else {
            throw ImageError("PNG of \(width)×\(height) pixels: sides must be 1 to 32768")
        }
        guard !idat.isEmpty else { throw ImageError("PNG without image data (truncated?)") }
        let samples: Int
        switch (colorType, depth) {
        case (0, 1), (0, 2), (0, 4), (0, 8), (0, 16): samples = 1
        case (2, 8), (2, 16): samples = 3
        case (3, 1), (3, 2), (3, 4), (3, 8): samples = 1
        case (4, 8), (4, 16): samples = 2
        case (6, 8), (6, 16): samples = 4
        default: throw ImageError("PNG colour type \(colorType) at bit depth \(depth) is not a valid combination")
        }
        if colorType == 3, palette.isEmpty || palette.count % 3 != 0 { throw ImageError("palette PNG without a valid palette") }
        let bitsPerPixel = samples * depth
        let rowBytes = (width * bitsPerPixel + 7) / 8
        let bpp = max(1, bitsPerPixel / 8)
        var raw = [UInt8](repeating: 0, count: height * (rowBytes + 1))
        var rawLength = uLongf(raw.count)
        let rc = raw.withUnsafeMutableBufferPointer { out in
            idat.withUnsafeBufferPointer { input in
                uncompress(out.baseAddress, &rawLength, input.baseAddress, uLong(input.count))
            }
        }
        guard rc == Z_OK || rc == Z_BUF_ERROR else { throw ImageError("PNG image data does not inflate (zlib error \(rc))") }
        guard Int(rawLength) == raw.count else {
            throw ImageError("PNG image data holds \(rawLength) bytes, \(raw.count) expected for \(width)×\(height) (truncated?)")
        }

        // Undo the filters in place: row r's filter byte, then its bytes.
        var previous = [UInt8](repeating: 0, count: rowBytes)
        var scan = [UInt8](repeating: 0, count: rowBytes)
        var rows = [UInt8](repeating: 0, count: height * rowBytes)
        for r in 0..<height {
            let base = r * (rowBytes + 1)
            let filter = raw[base]
            for i in 0..<rowBytes {
                let x = raw[base + 1 + i]
                let a = i >= bpp ? scan[i - bpp] : 0
                let b = previous[i]
                let c = i >= bpp ? previous[i - bpp] : 0
                switch filter {
                case 0: scan[i] = x
                case 1: scan[i] = x &+ a
                case 2: scan[i] = x &+ b
                case 3: scan[i] = x &+ UInt8((Int(a) + Int(b)) / 2)
                case 4:
                    let p = Int(a) + Int(b) - Int(c)
                    let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
                    scan[i] = x &+ (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)
                default: throw ImageError("PNG row \(r) has an unknown filter type \(filter)")
                }
            }
            for i in 0..<rowBytes { rows[r * rowBytes + i] = scan[i] }
            swap(&previous, &scan)
        }

        // Samples to 8 bits, alpha dropped, palette looked up.
        let channels = colorType == 2 || colorType == 6 || colorType == 3 ? 3 : 1
        var out = [UInt8](repeating: 0, count: width * height * channels)
        let maxValue = (1 << min(depth, 8)) - 1
        for r in 0..<height {
            let row = r * rowBytes
            for x in 0..<width {
                func sample(_ s: Int) -> Int {
                    switch depth {
                    case 16: return Int(rows[row + (x * samples + s) * 2])  // high byte
                    case 8: return Int(rows[row + x * samples + s])
                    default:
                        let bit = (x * samples + s) * depth
                        return (Int(rows[row + bit / 8]) >> (8 - depth - bit % 8)) & maxValue
                    }
                }
                let o = (r * width + x) * channels
                switch colorType {
                case 3:
                    let index = sample(0)
                    guard index * 3 + 2 < palette.count else { throw ImageError("PNG pixel uses palette entry \(index) of \(palette.count / 3)") }
                    out[o] = palette[index * 3]; out[o + 1] = palette[index * 3 + 1]; out[o + 2] = palette[index * 3 + 2]
                case 0, 4:
                    let v = sample(0)
                    out[o] = UInt8(depth < 8 ? v * 255 / maxValue : v)
                default:
                    out[o] = UInt8(sample(0)); out[o + 1] = UInt8(sample(1)); out[o + 2] = UInt8(sample(2))
                }
            }
        }
        return DecodedImage(width: width, height: height, channels: channels, pixels: out)
    }

    static func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
}
