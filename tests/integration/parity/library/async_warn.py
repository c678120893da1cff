# Copyright: (c) 2026, tplabs developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module that warns and deprecates, to compare how core and async_wait show them."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={})
    module.warn("parity warning from an async job")
    module.deprecate(
        "parity deprecation from an async job",
        version="99.0.0",
        collection_name="tplabs.async_tasks",
    )
    module.exit_json(changed=False)


main()
