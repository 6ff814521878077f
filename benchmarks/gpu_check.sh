#!/usr/bin/env bash
# The GPU check: the whole test suite (tests/test_cuda.py runs only where CUDA is) and `verify --device cuda` at XL
# width (gpu_xl_verify.py), on a machine whose python3 has torch with CUDA, transformers, typer, rich, safetensors,
# sentencepiece, pytest and hypothesis but not fairseq. fairseq and its runtime deps travel as wheels in .whl/
# (fetched on the dev machine; docs/benchmarks.md, "GPU check", has the command). Logs go to $OUT (default gpu-out).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PATH=/tmp/bin:$PATH
mkdir -p /tmp/bin
printf '#!/usr/bin/env python3\nfrom xlmr_tools.cli.app import main\nmain()\n' > /tmp/bin/xlmr
chmod +x /tmp/bin/xlmr
{ nvidia-smi -L; python3 -c "import sys, torch, transformers, fairseq; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'transformers', transformers.__version__, 'fairseq', fairseq.__version__, \
torch.cuda.get_device_name())"; } 2>&1 | tee "$OUT/env.txt"
if [ -z "${SKIP_TESTS:-}" ]; then
  timeout "${PYTEST_TIMEOUT:-300}" python3 -m pytest -q -p no:cacheprovider -rfE tests 2>&1 | tee "$OUT/pytest.log" \
    | tail -n 60
fi
timeout "${XL_TIMEOUT:-240}" python3 -m benchmarks.gpu_xl_verify 2>&1 | tee "$OUT/xl.log"
