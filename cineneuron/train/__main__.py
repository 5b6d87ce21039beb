"""`torchrun --nproc-per-node N -m cineneuron.train ARGS`: `cn train ARGS` on each rank."""

import sys

from cineneuron.cli import main

if __name__ == "__main__":
    sys.argv = ["cn", "train", *sys.argv[1:]]
    main()
