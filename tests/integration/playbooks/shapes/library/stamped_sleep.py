# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test module: sleep, write its own start and end (epoch seconds) on the host, report no times.

The time_saved shape tests use it as a job whose module reports no start, end or delta:
the callback must find the job's end elsewhere, and the stamp file is the ground truth.
"""

from __future__ import annotations

import os
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: stamped_sleep
short_description: Sleep and write the real start and end on the host (tests only)
description: Writes C(START END) in epoch seconds to O(stamp); returns no times itself.
options:
  seconds:
    description: How long to sleep.
    type: float
    required: true
  stamp:
    description: File that receives the start and end.
    type: path
    required: true
author: tplabs developers
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "seconds": {"type": "float", "required": True},
            "stamp": {"type": "path", "required": True},
        }
    )
    start = time.time()
    time.sleep(module.params["seconds"])
    end = time.time()
    tmp = module.params["stamp"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(f"{start:.6f} {end:.6f}\n")
    os.replace(tmp, module.params["stamp"])
    module.exit_json(changed=True)


if __name__ == "__main__":
    main()
