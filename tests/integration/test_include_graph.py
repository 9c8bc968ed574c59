"""The modules of server/ include each other without a cycle.

Runs scripts/include-graph.py on the source tree (MYXID_SRCDIR, as every
integration test finds it) and passes on its exit status: any cycle fails,
there is no list of exceptions.
"""
import os
import subprocess
import sys

srcdir = os.environ.get("MYXID_SRCDIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))
script = os.path.join(srcdir, "scripts", "include-graph.py")
result = subprocess.run([sys.executable, script,
                         os.path.join(srcdir, "server")])
sys.exit(result.returncode)
