"""Writes the seed corpora of fuzz/seeds/<target>/ (checked in; rerun to regenerate).

Seeds are small valid inputs of each format, plus a few near-misses, so that fuzzing starts
from inputs that reach deep into each parser. Images are written here byte by byte (PNG, BMP)
except one tiny JPEG, copied from CPython's test data (PSF licence) when it is present.
"""
import glob, gzip, json, os, struct, zlib, shutil, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")


def put(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# csv_table: the first byte picks the dialect (see fuzz_targets/csv_table.rs).
iris = open(os.path.join(ROOT, "data/sklearn/iris.csv"), "rb").read().splitlines()[:12]
put("csv_table", "iris", b"\x00" + b"\n".join(iris) + b"\n")
put("csv_table", "kinds", b"\x00x,color,ok,note\n1.5,red,true,\"a, quoted\"\nNA,,no,\"say \"\"hi\"\"\"\n-3e2,blue,1,x\n")
put("csv_table", "tsv", b"\x01a\tb\tlabel\n1\t2\tx\n3\t4\ty\n")
put("csv_table", "semicolon", b"\x02a;b;label\n1,5;2;x\n")
put("csv_table", "whitespace", b"\x03a b   label\n1  2 x\n3\t4 y\n")
put("csv_table", "noheader", b"\x08" + b"\n".join(iris[1:5]) + b"\n")
put("csv_table", "ragged", b"\x20a,b,c\n1,2\n3,4,5\n6,7,8,9\n")
put("csv_table", "gzip", b"\x80" + gzip.compress(b"a,b,label\n1,2,x\n3,4,y\n", mtime=0))

# idx: u8 images with labels, float32 and int32 arrays, and a truncated body.
def idx(code, dims, body):
    return struct.pack(">BBBB", 0, 0, code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + body

put("idx", "images", idx(0x08, [2, 3, 3], bytes(range(18))))
put("idx", "labels", idx(0x08, [4], bytes([0, 1, 2, 1])))
put("idx", "float", idx(0x0D, [2, 2], struct.pack(">4f", 0.5, -1.0, 2.0, 3.5)))
put("idx", "int", idx(0x0C, [3], struct.pack(">3i", 1, -2, 3)))
put("idx", "truncated", idx(0x08, [2, 28, 28], bytes(10)))
put("idx", "gzip", gzip.compress(idx(0x08, [1, 2, 2], bytes(4)), mtime=0))

# text_lines: the first byte picks separator, header and label position.
sms = open(os.path.join(ROOT, "data/sms-spam/SMSSpamCollection"), "rb").read().splitlines()[:8] if os.path.exists(os.path.join(ROOT, "data/sms-spam/SMSSpamCollection")) else [b"ham\tOk lar...", b"spam\tFree entry"]
put("text_lines", "sms", b"\x00" + b"\n".join(sms) + b"\n")
put("text_lines", "comma-header", b"\x05label,text\nham,hello there\nspam,win now\n")
put("text_lines", "label-last", b"\x08hello there\tham\nwin now\tspam\n")
put("text_lines", "utf8", "\x00ham\tcafé ☕\nspam\t\u00a0\n".encode())
put("text_lines", "bad", b"\x00ham\nspam\t\xff\xfe\n")

# image: the first byte picks grey / RGB and resizing.
def png(w, h, channels):
    color = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + bytes((x * 40 + y * 20 + c * 60) % 256 for x in range(w) for c in range(channels)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")

def bmp(w, h):
    row = (w * 3 + 3) // 4 * 4
    pixels = b"".join(bytes((x * 30 + y * 10) % 256 for x in range(w) for _ in range(3)).ljust(row, b"\x00") for y in range(h))
    header = b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels

put("image", "grey-png", b"\x00" + png(4, 4, 1))
put("image", "rgb-png", b"\x01" + png(5, 3, 3))
put("image", "rgba-png-keep", b"\x03" + png(2, 2, 4))
put("image", "bmp", b"\x00" + bmp(3, 2))
jpg = glob.glob(os.path.join(sys.prefix, "lib/python3*/test/test_email/data/python.jpg"))
if jpg:
    put("image", "jpeg", b"\x01" + open(jpg[0], "rb").read())

# config_yaml: every shipped config, and a few broken ones.
for p in sorted(glob.glob(os.path.join(ROOT, "configs/*.yaml"))):
    put("config_yaml", os.path.basename(p), open(p, "rb").read())
put("config_yaml", "typo", b"name: t\nseed: 1\ndata: {format: idx, images: a, labels: b}\ntrain: {epochz: 2}\n")
put("config_yaml", "anchors", b"a: &x [1, 2]\nname: *x\n")

# v2_request: V2 tensors and raw instances, for the table and the image model.
reqs = {
    "v2-table": {"id": "1", "inputs": [
        {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, None]},
        {"name": "color", "shape": [2], "datatype": "BYTES", "data": ["red", "NA"]},
        {"name": "ok", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        {"name": "note", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}],
        "outputs": [{"name": "label"}]},
    "v2-image": {"inputs": [{"name": "pixels", "shape": [1, 1, 4, 4], "datatype": "UINT8", "data": list(range(16))}],
                 "parameters": {"binary_data_output": False}},
    "v2-flat": {"inputs": [{"name": "pixels", "shape": [1, 16], "datatype": "FP64", "data": [[0.5] * 16]}]},
    "instances-table": {"instances": [{"x": 1, "color": "red", "ok": "yes", "note": "n"}, {"x": "2", "color": None, "ok": 0, "note": ""}]},
    "instances-image": {"instances": [{"image": "data:image/png;base64,iVBORw0KGgo="}]},
}
for name, r in reqs.items():
    put("v2_request", name, json.dumps(r))
put("v2_request", "array", b"[{\"x\": 1}]")
put("v2_request", "deep", b"{\"instances\": [" + b"[" * 40 + b"]" * 40 + b"]}")

# predict_csv: iris records for the asset bundle.
put("predict_csv", "iris", b"sepal_length,sepal_width,petal_length,petal_width,species\n" + b"\n".join(iris[1:]) + b"\n")
put("predict_csv", "reordered", b"petal_width,sepal_length,petal_length,sepal_width,extra\n0.2,5.1,1.4,3.5,x\n1e38,NaN,,3,y\n")
put("predict_csv", "empty", b"")

# bundle: the first byte picks the file replaced (bundle.json, model.json, preprocess.json,
# model.safetensors): the asset bundle's own files.
assets = os.path.join(HERE, "assets/bundle")
for i, f in enumerate(["bundle.json", "model.json", "preprocess.json", "model.safetensors"]):
    p = os.path.join(assets, f)
    if os.path.exists(p):
        put("bundle", f, bytes([i]) + open(p, "rb").read())

# checkpoint: the asset checkpoint, and it truncated.
ck = os.path.join(HERE, "assets/checkpoint.ckpt")
if os.path.exists(ck):
    data = open(ck, "rb").read()
    put("checkpoint", "checkpoint", data)
    put("checkpoint", "truncated", data[: len(data) // 2])
put("checkpoint", "header-only", struct.pack("<Q", 2) + b"{}")
