#!/usr/bin/env python3
"""png_compare.py A.png B.png [--tol 8] [--max-diff 0.005] [--min-content 0.05]

Compares two 8-bit RGB(A) PNGs pixel by pixel (standard library only): exits 0 when
they have the same size, at most --max-diff of the pixels differ by more than --tol in
some channel, and at least --min-content of A's pixels differ from its top-left pixel
(the background), so that two blank images do not count as equal.
"""
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, width = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in (2, 6) or interlace:
                sys.exit(f"{path}: only 8-bit RGB/RGBA, non-interlaced")
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, rows, prev = zlib.decompress(idat), [], bytearray(width * bpp)
    stride = width * bpp
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows


def main():
    args = sys.argv[1:]
    opts = {"--tol": 8.0, "--max-diff": 0.005, "--min-content": 0.05}
    files = []
    while args:
        a = args.pop(0)
        if a in opts:
            opts[a] = float(args.pop(0))
        else:
            files.append(a)
    (wa, ha, a), (wb, hb, b) = read_png(files[0]), read_png(files[1])
    if (wa, ha) != (wb, hb):
        sys.exit(f"sizes differ: {wa}x{ha} and {wb}x{hb}")
    bg, total = a[0][0], wa * ha
    content = sum(1 for row in a for p in row if max(abs(p[k] - bg[k]) for k in range(3)) > 8)
    diff = sum(1 for ra, rb in zip(a, b) for p, q in zip(ra, rb)
               if max(abs(p[k] - q[k]) for k in range(3)) > opts["--tol"])
    print(f"{files[0]} vs {files[1]}: {wa}x{ha}, {content / total:.1%} content, "
          f"{diff} pixels ({diff / total:.3%}) differ by more than {opts['--tol']:g}")
    if content < opts["--min-content"] * total:
        sys.exit("FAIL: the first image is (nearly) blank")
    if diff > opts["--max-diff"] * total:
        sys.exit("FAIL: the images differ")


main()
