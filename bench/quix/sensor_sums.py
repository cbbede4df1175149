"""The sensor-sums workload in Quix Streams, for bench/quix.ts (the published Sluice vs Quix benchmark).

The same function as functions/sensor-sums: per key, 10 s tumbling windows of the readings'
`value`, 2 s grace, the key's own clock, one final result per window to the output topic. The app
stops itself once it has consumed `--records` records, then prints one JSON line: records,
seconds from the first record to the last, CPU seconds (user + system) over that span, and the
process's peak RSS.
"""
import argparse
import json
import resource
import tempfile
import time

from quixstreams import Application

parser = argparse.ArgumentParser()
parser.add_argument("--brokers", required=True)
parser.add_argument("--input", required=True)
parser.add_argument("--output", required=True)
parser.add_argument("--records", type=int, required=True)
parser.add_argument("--guarantee", choices=["at-least-once", "exactly-once"], default="at-least-once")
args = parser.parse_args()

app = Application(
    broker_address=args.brokers,
    consumer_group=f"quix-bench-{time.time_ns()}",
    auto_offset_reset="earliest",
    processing_guarantee=args.guarantee,
    state_dir=tempfile.mkdtemp(prefix="quix-bench-state-"),
    loglevel="WARNING",
)
source = app.topic(args.input, key_deserializer="string", value_deserializer="json")
sink = app.topic(args.output, key_serializer="string", value_serializer="json")

seen = 0
first = {}


def count(_value):
    global seen
    if seen == 0:
        first["wall"] = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        first["cpu"] = usage.ru_utime + usage.ru_stime
    seen += 1
    if seen == args.records:
        # Stops after this record: Quix finishes processing it, flushes the producer and commits.
        app.stop()


sdf = app.dataframe(source)
sdf = sdf.update(count)
sdf = sdf.apply(lambda r: r["value"]).tumbling_window(duration_ms=10_000, grace_ms=2_000).sum().final()
sdf = sdf.to_topic(sink)
app.run()

wall = time.perf_counter() - first["wall"]
usage = resource.getrusage(resource.RUSAGE_SELF)
print(
    json.dumps(
        {
            "engine": "quix-streams",
            "guarantee": args.guarantee,
            "records": seen,
            "seconds": round(wall, 3),
            "cpuSeconds": round(usage.ru_utime + usage.ru_stime - first["cpu"], 3),
            "peakRssMB": round(usage.ru_maxrss / 1024, 1),
        }
    ),
    flush=True,
)
