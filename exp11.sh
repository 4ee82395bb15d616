#!/usr/bin/env bash
set -u
b=$PWD/.gpu; cd $b && tar -xJf bin.tar.xz && cd - >/dev/null; export LD_LIBRARY_PATH=$b/lib:/usr/local/cuda/lib64
ls /tmp/q06 | head -3
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu)
$NCU --metrics gpu__time_duration.sum,dram__bytes_read.sum --launch-skip 300 --launch-count 30 --csv --log-file $OUT/ncu.csv $b/bin/nativelm bench_one_batch --device cuda --model-path /tmp/q06 --batch-size 1 --input-len 60 --output-len 40 --disable-cuda-graph 2>&1 | tail -3
wc -l $OUT/ncu.csv; head -3 $OUT/ncu.csv
