# Ported from ansible-core 2.19.14, test/integration/targets/async/library/async_test.py and
# test/integration/targets/async_fail/library/async_test.py (the two copies merged: stderr
# and recovered_fail modes). Copyright: Ansible Project.
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import sys
import time

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(fail_mode=dict(type="list", default=["success"])))

    result = dict(changed=True)

    fail_mode = module.params["fail_mode"]

    try:
        if "leading_junk" in fail_mode:
            print("leading junk before module output")

        if "graceful" in fail_mode:
            module.fail_json(msg="failed gracefully")

        if "exception" in fail_mode:
            raise Exception("failing via exception")

        if "stderr" in fail_mode:
            print("printed to stderr", file=sys.stderr)

        if "recovered_fail" in fail_mode:
            result = {"msg": "succeeded", "failed": False, "changed": True}
            # Wait in the middle to setup a race where the controller reads incomplete data
            # from our special async_status the first poll
            time.sleep(5)

        module.exit_json(**result)

    finally:
        if "trailing_junk" in fail_mode:
            print("trailing junk after module output")


main()
