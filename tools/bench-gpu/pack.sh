# Packs the result files under $OUT into one archive (a device call brings back only a few files, each under
# a size limit): every file but the archives, table.md and log.txt goes into results-N.tgz; CPU profiles
# (large) are left out. Usage: bash tools/bench-gpu/pack.sh (from device.sh and stream.sh).
OUT=${OUT:-/tmp/bench-out}
cd "$OUT" || exit 0
files=$(find . -type f ! -name '*.tgz' ! -name table.md ! -name log.txt ! -path './cpuprof-*' | sort)
[ -n "$files" ] || exit 0
n=$(ls results-*.tgz 2>/dev/null | wc -l)
tar -czf "results-$n.tgz" $files && rm -f $files
rm -rf cpuprof-*
ls -la "$OUT"
