"""Provider code: only what a provider's YAML cannot say, reached by name through flows.hooks.resolve.

Mapping files refer to code here as ``<module>.<Name>`` (``request.contract: jicoo.CreateBooking``,
``request.readback: jicoo.find_booking``); code kept elsewhere is ``package.module:Name``. Each module
holds only its request contract (a pydantic model of the provider's documented request) and the few
behaviours that need code: reading back a row after an unknown outcome, a second call, a callback.
Provider modules import from flows.hooks and the modules below it; nothing imports them directly.
"""
