# Makes the image-decoder fixtures of Tests/Data/images and their reference pixels (decoded by Pillow 13).
# Run from the repository root with Pillow installed: python3 Tests/Data/images/make-fixtures.py
import base64, hashlib, io, json, math, os
from PIL import Image
out = "Tests/Data/images"
W, H = 21, 13   # odd sizes: partial JPEG MCUs, PNG rows not byte-aligned at low bit depths
def rgb():
    im = Image.new("RGB", (W, H))
    for y in range(H):
        for x in range(W):
            im.putpixel((x, y), (int(255 * x / (W - 1)), int(255 * y / (H - 1)), int(127 + 120 * math.sin(x * 0.9 + y * 0.6))))
    return im
base = rgb()
ref = {}
def save(name, im, **kw):
    path = os.path.join(out, name)
    im.save(path, **kw)
    dec = Image.open(path)
    dec = dec.convert("L") if dec.mode in ("L", "LA", "I;16", "1", "I") else dec.convert("RGB")
    px = dec.tobytes()
    ref[name] = {"width": dec.width, "height": dec.height, "channels": 1 if dec.mode == "L" else 3,
                 "pixels": base64.b64encode(px).decode(), "exact": name.endswith(".png")}
save("rgb8.png", base)
save("rgba8.png", base.convert("RGBA"))
save("grey8.png", base.convert("L"))
save("grey-alpha8.png", base.convert("LA"))
save("grey1.png", base.convert("L").point(lambda v: 255 if v > 128 else 0).convert("1"))
save("palette.png", base.convert("P", palette=Image.ADAPTIVE, colors=16))
g16 = Image.frombytes("I;16", (W, H), b"".join(((base.convert("L").getpixel((x, y)) * 257) & 0xFFFF).to_bytes(2, "little") for y in range(H) for x in range(W)))
save("grey16.png", g16)
ref["grey16.png"]["pixels"] = ref["grey8.png"]["pixels"]  # the high byte of v·257 is v (Pillow's I;16 → L clips instead)
save("rgb-444.jpg", base, quality=95, subsampling=0)
save("rgb-420.jpg", base, quality=95, subsampling=2)
save("grey.jpg", base.convert("L"), quality=95)
# restart markers every MCU (Pillow passes restart_marker_blocks to libjpeg)
save("rgb-restart.jpg", base, quality=90, subsampling=2, restart_marker_blocks=1)
base.save(os.path.join(out, "progressive.jpg"), quality=90, progressive=True)
base.convert("CMYK").save(os.path.join(out, "cmyk.jpg"), quality=90)
json.dump(ref, open(os.path.join(out, "reference.json"), "w"), indent=1, sort_keys=True)
print(sorted(os.listdir(out)))
