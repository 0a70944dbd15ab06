import Foundation
import NebulaDataset
import NebulaImage

// Note [Images as pixel tables]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// An image-folder dataset is a table of (path, label) with the files beside it. For the builder,
// its images become a pixel table: every image decoded (Note [Image decoding]), brought to one
// side S = min(--image-side, the largest side among the images) by area resampling (aspect ratio
// not kept), grey when every image is stored grey, else RGB; one row per image with the label and
// the pixels px0…px(C·S²−1), channel-major (all of red, then green, then blue), as integers 0–255.
// The pixel columns are what the builder recognises as a square image (a CNN joins the candidates),
// and what its preprocessing standardises per pixel. Images that cannot be read are left out and
// listed (the first 20, and their count); more than half unreadable fails the conversion.

/// Converts an image-folder table to a pixel-table CSV (Note [Images as pixel tables]).
public enum ImagePixelTable {
    public struct Summary: Sendable {
        public var side: Int
        public var channels: Int
        public var images: Int
        /// "path: reason" of the first unreadable images, and how many there were.
        public var failures: [String]
        public var failed: Int
    }

    public static func write(_ dataset: ColumnarDataset, target: String, pathColumn: String = "path", baseDirectory: String,
                             maxSide: Int, to csvPath: String, progress: (String) -> Void = { _ in }) throws -> Summary {
        guard dataset.columnNames.contains(pathColumn) else {
            throw BuilderError(.invalidRequest, "the image dataset has no '\(pathColumn)' column", field: "dataset_id")
        }
        guard dataset.columnNames.contains(target), target != pathColumn else {
            throw BuilderError(.invalidRequest, "no column '\(target)' in the image dataset: its target is 'label'", field: "target")
        }
        let paths = try dataset.column(pathColumn), labels = try dataset.column(target)
        func file(_ r: Int) -> String {
            let p = paths.string(r) ?? ""
            return p.hasPrefix("/") ? p : baseDirectory + "/" + p
        }
        // Pass 1: headers only, for the side and the channels.
        var largest = 0, colour = false
        for r in 0..<dataset.rowCount {
            guard let handle = FileHandle(forReadingAtPath: file(r)) else { continue }
            let head = Array((try? handle.read(upToCount: 64 << 10)) ?? Data())  // never readData: it traps on errors
            try? handle.close()
            if let h = ImageDecoder.header(head) {
                largest = max(largest, h.width, h.height)
                colour = colour || h.channels == 3
            }
        }
        guard largest > 0 else {
            throw BuilderError(.invalidRequest, "none of the \(dataset.rowCount) images of this dataset has a readable PNG or JPEG header", field: "dataset_id")
        }
        let side = max(4, min(maxSide, largest)), channels = colour ? 3 : 1
        progress("decoding \(dataset.rowCount) images to \(side)×\(side) \(channels == 3 ? "RGB" : "grey") pixels")

        guard FileManager.default.createFile(atPath: csvPath, contents: nil), let out = FileHandle(forWritingAtPath: csvPath) else {
            throw BuilderError(.invalidRequest, "cannot write \(csvPath)")
        }
        defer { try? out.close() }
        let width = side * side * channels
        var text = csvQuoted(target) + "," + (0..<width).map { "px\($0)" }.joined(separator: ",") + "\n"
        var failures: [String] = [], failed = 0, images = 0
        var planar = [UInt8](repeating: 0, count: width)
        for r in 0..<dataset.rowCount {
            guard let label = labels.string(r), !isMissingText(label) else { continue }
            let path = file(r)
            do {
                guard let data = FileManager.default.contents(atPath: path) else { throw ImageError("\(path): cannot be read") }
                let image = try ImageDecoder.decode(Array(data), source: paths.string(r) ?? path)
                    .converted(to: channels).resized(side: side)
                // interleaved → channel-major
                for c in 0..<channels {
                    for i in 0..<(side * side) { planar[c * side * side + i] = image.pixels[i * channels + c] }
                }
                text += csvQuoted(label)
                for v in planar { text += ","; text += String(v) }
                text += "\n"
                images += 1
            } catch {
                failed += 1
                if failures.count < 20 { failures.append("\(error)") }
            }
            if text.utf8.count > 1 << 20 {
                out.write(Data(text.utf8))
                text = ""
            }
            if (r + 1) % 5000 == 0 { progress("decoded \(r + 1) of \(dataset.rowCount) images") }
        }
        out.write(Data(text.utf8))
        guard images > 0, failed * 2 <= images + failed else {
            throw BuilderError(.invalidRequest, "\(failed) of \(images + failed) images could not be read, e.g. \(failures.prefix(3).joined(separator: "; "))",
                               field: "dataset_id")
        }
        return Summary(side: side, channels: channels, images: images, failures: failures, failed: failed)
    }
}
