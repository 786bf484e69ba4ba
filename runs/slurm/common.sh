# Shared body of strong.sbatch and weak.sbatch (sourced; KIND and DEFAULT_N set by the caller).
# Relative paths (OPTIONS, OUT, PLUGIN_PATH) are relative to the folder the job starts in: the
# submit folder under sbatch, the current folder under bash.
DRY=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY="--dry-run" ;;
    *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
  esac
done
OCNET_ROOT="${OCNET_ROOT:-$(cd "$HERE/../.." && pwd)}"
if [ -n "${OCNET_SETUP:-}" ]; then
  eval "$OCNET_SETUP"
fi
PYTHON="${PYTHON:-$OCNET_ROOT/.venv/bin/python}"
TASKS="${SLURM_NTASKS:-64}"
if [ -z "${RANKS:-}" ]; then
  RANKS=""
  for p in 1 2 4 8 16 32 64 128 256 512 1024; do
    [ "$p" -le "$TASKS" ] && RANKS="${RANKS:+$RANKS,}$p"
  done
fi
LAUNCHER=auto
[ -n "$DRY" ] && [ -z "${SLURM_JOB_ID:-}" ] && LAUNCHER=srun  # show the srun lines outside Slurm too
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# the default study (runs/peaks.opts at N in the thousands) needs small initial layer weights:
# with std 1, lmvm's first line search failed at N = 4096 (docs/hpc/scaling.md); EXTRA="" keeps none
if [ -z "${OPTIONS:-}" ] && [ -z "${EXTRA+set}" ]; then
  EXTRA="-init_layer 1e-3"
fi
CMD=("$PYTHON" "$OCNET_ROOT/runs/scaling.py" --kind "$KIND" --options "${OPTIONS:-$OCNET_ROOT/runs/peaks.opts}"
     --N "${N:-$DEFAULT_N}" --ranks "$RANKS" --modes "${MODES:-oneshot}" --its "${ITS:-5}" --repeat "${REPEAT:-3}"
     --launcher "$LAUNCHER" --pythonpath "${PLUGIN_PATH:-}" --extra "${EXTRA:-}"
     --out "${OUT:-scaling_${KIND}_${SLURM_JOB_ID:-local}}")
if [ "${RESUME:-0}" = 1 ]; then
  CMD+=(--resume)  # (continue the study in OUT: its measured points kept)
fi
echo "+ $(printf '%q ' "${CMD[@]}")$DRY"  # (quoted: the line pastes back into a shell)
"${CMD[@]}" $DRY
