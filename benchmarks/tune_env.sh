# Sourced by the benchmarks/tune_*.sh scripts (run from the repository root): activates
# .venv when no virtual environment is active, gives each process one torch thread
# unless OMP_NUM_THREADS is set, and sets the array `data` to the dreamgeo flags of
# the dataset named by $1 (a planted preset is named planted_<preset>, as in configs/).
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
data=(--dataset "$1")
if [[ "$1" == planted_* ]]; then
  data=(--preset "${1#planted_}")
fi
