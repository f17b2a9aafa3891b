"""Test-only: makes frontrun's rewriting visible in child processes.

Put this directory on PYTHONPATH and every code object frontrun rewrites additionally has its
string constant "MARK" replaced by "REWRITTEN" (after the real rewriter, when there is one).
"""

import frontrun_marker

frontrun_marker.patch()
