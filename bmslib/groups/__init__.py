"""Battery groups (``type: group_parallel`` / ``group_serial``): a virtual device built from its members.

:mod:`~bmslib.groups.combine` holds the pure combining formulas; :mod:`~bmslib.groups.driver` the group
driver, which reads its members' latest samples and sends switch commands through the App's command queue.
"""
