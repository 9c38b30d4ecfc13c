"""Payment and readings reminders: scheduled outbound campaigns in every messenger.

A campaign (``campaigns``) names its audience from billing and contacts, a text with
placeholders, a schedule and quiet hours. ``audience`` decides who may be written to
and why not (the same code for the preview and for the sends), ``sender`` expands a
campaign into persisted sends, one per contact and period, and delivers them through
the channels with a throttle per platform, at most once each. The customer's «стоп»
(``bot.flows.reminders``) is recorded in ``consent`` and honoured by every campaign.
"""
