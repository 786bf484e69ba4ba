# Shared body of strong.sbatch and weak.sbatch (sourced; KIND and DEFAULT_N set by the caller).
DRY=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY="--dry-run" ;;
    *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
  esac
done
OCNET_ROOT="${OCNET_ROOT:-$(cd "$HERE/../.." && pwd)}"
cd "$OCNET_ROOT"
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
CMD=("$PYTHON" runs/scaling.py --kind "$KIND" --options "${OPTIONS:-runs/peaks.opts}" --N "${N:-$DEFAULT_N}"
     --ranks "$RANKS" --modes "${MODES:-oneshot}" --its "${ITS:-5}" --repeat "${REPEAT:-3}"
     --launcher "$LAUNCHER" --extra "${EXTRA--init_layer 1e-3}" --out "${OUT:-runs/out/slurm_${KIND}_${SLURM_JOB_ID:-local}}")
echo "+ ${CMD[*]} $DRY"
"${CMD[@]}" $DRY
