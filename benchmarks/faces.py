"""Face detection recall and per-photo wall time on hand-boxed real photos.

    python benchmarks/faces.py --faces ../shared/data/faces [--detectors yunet mtcnn]

For each detector: recall at IoU >= 0.4 over the boxed faces of `training.xml` and
`testing.xml`, false positives there, faces found in `dogs.jpg` (a photo without people),
and the median wall time of the whole path a bot reply takes (decode, detect, classify,
annotate, encode) over those photos. All detectors run in one process, one after another.
"""

import argparse
import pathlib
import statistics
import sys
import time
import xml.etree.ElementTree as ElementTree

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from classifier import EmotionReader, annotate  # noqa: E402
from classifier.detect import box_iou  # noqa: E402

MIN_IOU = 0.4
REPEATS = 3


def boxed_photos(faces_dir):
    for name in ("training.xml", "testing.xml"):
        for image in ElementTree.parse(faces_dir / name).getroot().iter("image"):
            boxes = [tuple(int(box.get(key)) for key in ("left", "top", "width", "height"))
                     for box in image.iter("box")]
            yield faces_dir / image.get("file"), boxes


def match(truth, found):
    """Greedy one-to-one matching by IoU; return (true positives, false positives)."""
    unmatched = list(found)
    hits = 0
    for box in truth:
        best = max(unmatched, key=lambda candidate: box_iou(box, candidate), default=None)
        if best is not None and box_iou(box, best) >= MIN_IOU:
            hits += 1
            unmatched.remove(best)
    return hits, len(unmatched)


def measure(reader, faces_dir):
    photos = list(boxed_photos(faces_dir))
    hits = false_positives = total = 0
    seconds = []
    for path, truth in photos:
        data = path.read_bytes()
        timings = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            analysis = reader.read_bytes(data)
            annotate(analysis.image, analysis.faces)
            timings.append(time.perf_counter() - started)
        seconds.append(min(timings))
        found_hits, found_false = match(truth, [face.box for face in analysis.faces])
        hits += found_hits
        false_positives += found_false
        total += len(truth)
    dogs = len(reader.read_bytes((faces_dir / "dogs.jpg").read_bytes()).faces)
    return {"photos": len(photos), "faces": total, "recall": hits / total, "false_positives": false_positives,
            "faces_in_dogs": dogs, "median_ms": 1000 * statistics.median(seconds)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=pathlib.Path, default=pathlib.Path("../shared/data/faces"),
                        help="folder with training.xml, testing.xml and dogs.jpg (default: %(default)s)")
    parser.add_argument("--detectors", nargs="+", default=["yunet", "mtcnn"], help="detectors to compare")
    args = parser.parse_args()

    print(f"{'detector':10} {'photos':>6} {'faces':>5} {'recall':>7} {'false+':>6} {'dogs':>5} {'median ms':>9}")
    for name in args.detectors:
        reader = EmotionReader(detector=name, threads=2)
        result = measure(reader, args.faces)
        print(f"{name:10} {result['photos']:6d} {result['faces']:5d} {result['recall']:7.3f} "
              f"{result['false_positives']:6d} {result['faces_in_dogs']:5d} {result['median_ms']:9.1f}", flush=True)


if __name__ == "__main__":
    main()
