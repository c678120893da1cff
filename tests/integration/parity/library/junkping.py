#!/usr/bin/env python
# Ported from ansible-core 2.19.14, test/integration/targets/async_extra_data/library/junkping.py
# (its shebang was #!/usr/bin/python; outside integration targets ansible-test's shebang rule
# wants this one; an old-style module needs one to be run at all).
# Copyright: Ansible Project.
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json


def main():
    print("junk_before_module_output")
    print(json.dumps(dict(changed=False, source="user")))
    print("junk_after_module_output")


if __name__ == "__main__":
    main()
