# Sourced (from the repository root) by the scripts that run on the GPU
# machine: unpacks the bundle bench/gpu/pack.sh made into /tmp/inferd,
# points the loader at its libraries and at the torch venv's cuDNN and
# cuBLAS (the versions the build links), and tells the tests where the
# sources and the binaries are. left() says how many of the script's
# $budget seconds since $start remain.
mkdir -p /tmp/inferd
tar -C /tmp/inferd -xzf .devcarry/inferd-bundle.tar.gz
venv=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
export LD_LIBRARY_PATH=/tmp/inferd/lib:$venv/cudnn/lib:$venv/cublas/lib:${LD_LIBRARY_PATH:-}
export INFERD_SOURCE_DIR=$PWD INFERD_BUILD_DIR=/tmp/inferd
left() { echo $((${budget:-600} - ($(date +%s) - ${start:-$(date +%s)}))); }
