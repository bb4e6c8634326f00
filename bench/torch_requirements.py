"""Print the requirements of the installed `torch` wheel that `import torch` needs on the CPU:
all of them except triton (only for torch.compile) and cuda-bindings (only for CUDA Python
APIs). The CUDA libraries stay: the PyPI wheel's shared libraries link against them, so
`import torch` fails without them even on a machine without a GPU."""

import importlib.metadata

for requirement in importlib.metadata.requires("torch") or []:
    name = requirement.split(";")[0].strip()
    if "extra ==" in requirement or name.startswith(("triton", "cuda-bindings")):
        continue
    print(requirement)
