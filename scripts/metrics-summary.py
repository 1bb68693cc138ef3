#!/usr/bin/env python3
"""Sums the gateways' latency histograms over pods: mean and bucket-bound p50/p99 of each; and
the counters that mean trouble (store batches run again after a conflict, resends, errors,
dropped notices), summed over pods and labels, when not zero.

    scripts/metrics-summary.py http://127.0.0.1:29090/metrics http://127.0.0.1:29091/metrics ...

Used by scripts/bench-cluster.sh after each run, to show where a message's time went
(docs/benchmarks.md). A quantile is the upper bound of the bucket it falls in.
"""
import re
import sys
import urllib.request
from collections import defaultdict

TROUBLE = ('chat_store_batch_retries_total', 'chat_retries_total', 'chat_errors_total',
           'chat_dropped_notices_total', 'chat_recent_cache_errors_total')
COUNTER = re.compile(r'^(\w+)(?:\{[^}]*\})? ([0-9.eE+-]+)$')
LINE = re.compile(r'^(\w+?)(_bucket|_sum|_count)\{?([^}]*)\}? ([0-9.eE+-]+|\+Inf)$')


def main(urls):
    buckets = defaultdict(lambda: defaultdict(float))
    sums, counts = defaultdict(float), defaultdict(float)
    trouble = defaultdict(float)
    for url in urls:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        for line in text.splitlines():
            c = COUNTER.match(line)
            if c and c.group(1) in TROUBLE:
                trouble[c.group(1)] += float(c.group(2))
            m = LINE.match(line)
            if not m:
                continue
            name, part, labels, value = m.groups()
            if part == '_bucket':
                le = re.search(r'le="([^"]+)"', labels).group(1)
                buckets[name][float(le)] += float(value)
            elif part == '_sum':
                sums[name] += float(value)
            else:
                counts[name] += float(value)
    for name in sorted(counts):
        n = counts[name]
        if not n or not name.endswith('_seconds'):
            continue
        bounds = sorted(buckets[name].items())

        def quantile(q):
            for le, c in bounds:
                if c >= q * n:
                    return '%.1f' % (le * 1000) if le != float('inf') else 'inf'
            return '?'
        print('  %-28s n=%-8d mean %6.1f ms  p50 <= %s ms  p99 <= %s ms'
              % (name, n, sums[name] / n * 1000, quantile(0.5), quantile(0.99)), file=sys.stderr)

    for name in TROUBLE:
        if trouble[name]:
            print('  %-28s %d' % (name, trouble[name]), file=sys.stderr)


if __name__ == '__main__':
    main(sys.argv[1:])
