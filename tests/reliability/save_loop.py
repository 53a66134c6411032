"""Child process of test_atomic_save: saves one program to FOLDER/program.ep and FOLDER/program.engine over and
over, printing "saved <ep sha256> <engine sha256> <sidecar sha256>" after each complete pair, until killed."""
import hashlib
import os
import sys
import warnings

import trtpack
from fuzz import programs


def sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def announce_replacements() -> None:
    replace = os.replace

    def announced(src, dst):
        print("replacing", os.path.basename(dst), sha(src), flush=True)
        replace(src, dst)

    os.replace = announced


def main(folder: str, body_size: int) -> None:
    warnings.simplefilter("ignore")
    program = programs.exported(body_size)
    ep, engine = os.path.join(folder, "program.ep"), os.path.join(folder, "program.engine")
    announce_replacements()
    print("ready", flush=True)
    while True:
        trtpack.save(program, ep)
        trtpack.save(program, engine)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
