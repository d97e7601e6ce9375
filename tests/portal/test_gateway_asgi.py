"""The gateway's ASGI entry (portal/gateway_asgi.py)."""

import gc


def test_the_gateway_entry_freezes_what_start_up_made_so_full_collections_skip_it():
    import portal.gateway_asgi  # noqa: F401  (the import is the start-up under test)

    assert gc.get_freeze_count() > 0
