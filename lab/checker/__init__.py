# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab checker: runs a trainee's answer against the lab hosts and grades it.

`make check STEP=<0-9|challenge> [FILE=...] [INVENTORY=...]` (or `python -m lab.checker`).
The grade comes from what happened on the hosts (job files, processes, files, the hosts'
clocks) and from what the run reported, never from reading the YAML alone. Not part of the
collection (it is not under plugins/): a tool of the training lab around it.
"""
