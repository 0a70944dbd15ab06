import Foundation

/// Builds the ZIP archives of the archive tests with Python's zipfile (and byte patches for the
/// malformed ones): `makeZip(case, in: dir)` returns the archive's path.
func makeZip(_ name: String, in dir: TempDir) throws -> String {
    let script = dir.file("make_zip.py")
    if !FileManager.default.fileExists(atPath: script) {
        try zipFixtureScript.write(toFile: script, atomically: true, encoding: .utf8)
    }
    let out = dir.file("\(name).zip")
    try runProgram("python3", [script, name, out])
    return out
}

private let zipFixtureScript = #"""
import io, json, os, random, struct, sys, zipfile, zlib

case, out = sys.argv[1], sys.argv[2]
random.seed(11)

def png(seed):
    raw = b"".join(b"\x00" + bytes((seed * 7 + x * 3 + y) % 256 for x in range(4 * 3)) for y in range(4))
    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def jpeg(seed):
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes([seed % 256]) * 64 + b"\xff\xd9"

def write(entries, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(out, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)

def patch(path, fn):
    data = bytearray(open(path, "rb").read())
    fn(data)
    open(path, "wb").write(bytes(data))

def cd_offsets(data):
    eocd = data.rfind(b"PK\x05\x06")
    count, size, offset = struct.unpack("<HII", data[eocd + 10:eocd + 20])
    result, p = [], offset
    for _ in range(count):
        result.append(p)
        n, e, c = struct.unpack("<HHH", data[p + 28:p + 34])
        p += 46 + n + e + c
    return eocd, result

if case == "csv":
    write([("train.csv", "id,\"name, full\",label\n1,\"a, b\",0\n2,c,1\n"),
           ("test.csv", "\ufeffid,name\n3,d\n"), ("README.md", "# Demo\n")])
elif case == "images":
    entries = []
    for split in ["train", "test"]:
        for label in ["cat", "dog", "bird"]:
            entries.append((f"{split}/{label}/", b""))
            for i in range(3):
                entries.append((f"{split}/{label}/{i}.png", png(i)))
                entries.append((f"{split}/{label}/{i}.jpg", jpeg(i)))
    entries += [("__MACOSX/train/._x", b"\x00\x05\x16\x07junk"), ("train/.DS_Store", b"\x00\x00\x00\x01Bud1")]
    write(entries)
elif case == "text":
    entries = []
    for label in ["pos", "neg"]:
        for i in range(4):
            entries.append((f"aclImdb/train/{label}/{i}_7.txt", f"A {label} review number {i}. Très bien!"))
    entries.append(("aclImdb/README", "Large Movie Review Dataset"))
    write(entries)
elif case == "coco":
    coco = {"info": {}, "images": [{"id": i, "file_name": f"{i}.jpg", "width": 4, "height": 4} for i in range(3)],
            "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [0, 0, 2, 2]},
                            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [1, 1, 2, 2]}],
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}]}
    write([("annotations/instances_train.json", json.dumps(coco))] + [(f"images/{i}.jpg", jpeg(i)) for i in range(3)])
elif case == "traversal":
    write([("ok.txt", "fine"), ("data/../../evil.txt", "escaped")])
elif case == "backslash":
    write([("ok.txt", "fine"), ("..\\evil.txt", "escaped")])
elif case == "absolute":
    write([("ok.txt", "fine"), ("/tmp/nebula-evil.txt", "escaped")])
elif case == "symlink":
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("ok.txt", "fine")
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
elif case == "bomb-ratio":
    write([("ok.txt", "fine"), ("zeros.bin", b"\x00" * (20 << 20))])
elif case == "bomb-stream":
    # 30 MiB of zeros then 1 MiB of noise: about 30:1 on average, so the header looks innocent.
    write([("mixed.bin", b"\x00" * (30 << 20) + os.urandom(1 << 20))])
elif case == "bomb-forged":
    write([("zeros.bin", b"\x00" * (20 << 20))])
    def forge(data):
        struct.pack_into("<I", data, 22, 1000)            # local header: uncompressed size
        eocd, cds = cd_offsets(data)
        struct.pack_into("<I", data, cds[0] + 24, 1000)   # central directory: uncompressed size
    patch(out, forge)
elif case == "bomb-total":
    write([(f"part{i}.bin", os.urandom(300_000)) for i in range(5)])
elif case == "many":
    write([(f"f{i:03}.txt", str(i)) for i in range(30)])
elif case == "crc":
    write([("a.txt", "hello world, stored"), ("b.txt", "second")], method=zipfile.ZIP_STORED)
    def flip(data):
        i = data.index(b"hello world")
        data[i] ^= 0x20
    patch(out, flip)
elif case == "deflate-garbage":
    write([("a.txt", "x" * 5000 + "".join(str(i) for i in range(3000)))])
    def garble(data):
        start = 30 + len("a.txt")
        for i in range(start, start + 40):
            data[i] = random.getrandbits(8)
    patch(out, garble)
elif case == "truncated":
    write([("a.csv", "a,b\n" * 5000), ("b.csv", "c,d\n" * 5000)])
    data = open(out, "rb").read()
    open(out, "wb").write(data[: len(data) // 2])
elif case == "not-zip":
    open(out, "wb").write(os.urandom(5000))
elif case == "duplicate":
    import warnings
    warnings.simplefilter("ignore")
    write([("a.txt", "one"), ("a.txt", "two")])
elif case == "file-dir-conflict":
    write([("a", "file"), ("a/b.txt", "child")])
elif case == "overlap":
    write([("a.bin", b"\x00" * 100000)])
    data = bytearray(open(out, "rb").read())
    eocd, cds = cd_offsets(data)
    cd = data[cds[0]:eocd]
    new = data[:cds[0]] + cd + cd                         # two records, one local header
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHII", tail, 8, 2, 2, len(cd) * 2, cds[0])
    open(out, "wb").write(bytes(new + tail))
elif case == "encrypted":
    write([("a.txt", "secret")], method=zipfile.ZIP_STORED)
    def encrypt_flag(data):
        data[6] |= 1
        eocd, cds = cd_offsets(data)
        data[cds[0] + 8] |= 1
    patch(out, encrypt_flag)
elif case == "zip64":
    # A small archive in full ZIP64 form: every size and offset in the ZIP64 extra field, and the
    # ZIP64 end record and locator before a saturated classic end record.
    write([("sub/t.csv", "a,b\n1,2\n"), ("blob.bin", b"\x07" * 100000), ("empty/", b"")])
    data = open(out, "rb").read()
    eocd, cds = cd_offsets(data)
    cd_start = cds[0]
    records = b""
    for p in cds:
        fixed = bytearray(data[p:p + 46])
        comp, uncomp = struct.unpack("<II", fixed[20:28])
        n, e, c = struct.unpack("<HHH", fixed[28:34])
        offset = struct.unpack("<I", fixed[42:46])[0]
        struct.pack_into("<H", fixed, 6, 45)
        struct.pack_into("<II", fixed, 20, 0xFFFFFFFF, 0xFFFFFFFF)
        struct.pack_into("<I", fixed, 42, 0xFFFFFFFF)
        extra = struct.pack("<HHQQQ", 1, 24, uncomp, comp, offset)
        struct.pack_into("<H", fixed, 30, e + len(extra))
        name = data[p + 46:p + 46 + n]
        records += bytes(fixed) + name + data[p + 46 + n:p + 46 + n + e] + extra + data[p + 46 + n + e:p + 46 + n + e + c]
    z64 = cd_start + len(records)
    end64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(cds), len(cds), len(records), cd_start)
    locator = struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    open(out, "wb").write(data[:cd_start] + records + end64 + locator + end)
elif case == "bzip2":
    write([("a.txt", "bz" * 1000)], method=zipfile.ZIP_BZIP2)
else:
    sys.exit("unknown case " + case)
"""#
