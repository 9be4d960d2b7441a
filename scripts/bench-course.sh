# Sourced by the benchmarks of the generated course (bench-ttfq.sh, bench-mount.sh), with
# $work and $questions set: builds kiln and gen_course (release), generates the course
# repository once ($REPO to use another) and syncs it once as course `big`. Sets $kiln,
# $repo and $data, and the helpers now_ms and median.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kiln-target}"
cargo build --release -q -p kiln-cli -p kiln-sync --examples --bins
kiln="$CARGO_TARGET_DIR/release/kiln"
gen="$CARGO_TARGET_DIR/release/examples/gen_course"
mkdir -p "$work"
repo="${REPO:-$work/course-$questions}"
[ -d "$repo" ] || "$gen" "$repo" "$questions" >/dev/null
data="$work/data-$questions"
export KILN_QUIET=1
[ -d "$data" ] || "$kiln" --data-dir "$data" sync "$repo" --course big >/dev/null
now_ms() { date +%s%3N; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
