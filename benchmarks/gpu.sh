#!/usr/bin/env bash
# The scale benchmark on an accelerator, when one is there: prints scale.py's JSON line (its "device" field names
# the accelerator), or one JSON line saying why it was skipped. Needs a JAX build for the accelerator
# (e.g. pip install 'jax[cuda12]') in the environment that runs it.
#   bash benchmarks/gpu.sh [scale.py options, e.g. --ratings 25e6]
set -euo pipefail
PY="${PYTHON:-python}"
here="$(cd "$(dirname "$0")" && pwd)"
if ! kind="$("$PY" -c 'import jax; d = jax.devices()[0]; assert d.platform != "cpu"; print(d.device_kind)' 2>/dev/null)"; then
  echo '{"benchmark": "scale", "skipped": "no accelerator visible to JAX (jax.devices() lists only CPUs)"}'
  exit 0
fi
echo "running on $kind" >&2
KERAS_BACKEND=jax exec "$PY" "$here/scale.py" "$@"
