"""The self-service bot: routes each turn to the menu, a flow step, or the operators.

Order of precedence for a customer message: the commands «меню», «назад», «отмена»
(at any step); the menu's own buttons (they restart a flow from anywhere); the step
of a flow in progress; and only then free text, whose meaning is asked of the
``Understander`` (the consultant's engine, or the keyword matcher if it cannot load) —
flow intents start their flows, topics are answered from the knowledge base.

In the middle of a flow, each waiting step declares what an answer to it looks like
(``WAITS`` of the flow module, see ``bot.attempts``). Text that is not an attempt at
the step is an aside: the consultant answers it (a topic, a thank-you, a request for
an operator or another task) and, unless the customer went elsewhere, the step is
offered again («Продолжить …»). Only attempts reach the step, so only they count as
failures.
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

from abonent.bot import texts as t
from abonent.bot.dialog import Dialog, Services, compose
from abonent.bot.flows import appeal, balance, faq, handoff, readings, reminders
from abonent.core import events
from abonent.core.pipeline import Turn, TurnOutcome
from abonent.core.types import SURVEY_PREFIX, Button
from abonent.nlu.base import Interpretation
from abonent.nlu.normalize import normalize

log = logging.getLogger(__name__)

FLOWS: dict[str, ModuleType] = {
    readings.FLOW: readings,
    balance.FLOW: balance,
    appeal.FLOW: appeal,
}
# How sure the consultant must be before text that could be the step's input (a name,
# a word or two) is taken as a question instead.
SURE = 0.9

# What the consultant reads of a message. The longest Russian words have ~35 letters: a
# longer run is not a word (a pasted hash, a held-down key) and costs the parser time
# that grows faster than its length, so it is cut to its head. A question is asked in
# its first sentences; a long message is read up to CONSULTANT_CHARS.
WORD_LETTERS = 40
CONSULTANT_CHARS = 1000
_LONG_WORD = re.compile(r"\S{" + str(WORD_LETTERS + 1) + ",}")
# Text shorter than this is parsed in the event loop: under a millisecond, cheaper than
# the hand-over to a worker thread.
INLINE_CHARS = 24
_PARSER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consultant")

COMMANDS = {
    "меню": t.P_MENU,
    "главное меню": t.P_MENU,
    "menu": t.P_MENU,
    "start": t.P_MENU,
    "начало": t.P_MENU,
    "в меню": t.P_MENU,
    "vtyu": t.P_MENU,
    "назад": t.P_BACK,
    "back": t.P_BACK,
    "отмена": t.P_CANCEL,
    "отменить": t.P_CANCEL,
    "стоп": t.P_CANCEL,
    "cancel": t.P_CANCEL,
}


class Bot:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle(self, turn: Turn) -> TurnOutcome:
        d = Dialog.from_turn(turn, self.services)
        if turn.is_start:
            self._greet(d)
        elif turn.status == "closed":
            # Only the answer to the rating question reaches a closed conversation.
            self._rating(d, turn.text or "", turn.payload)
            return TurnOutcome(replies=compose(d.replies), state={}, meta=d.meta, events=d.events)
        elif turn.status == "queued":
            leave = self._in_queue(d, turn.text or "", turn.payload)
            return TurnOutcome(
                replies=compose(d.replies),
                state=d.state(),
                leave_queue=leave,
                meta={"queued": True},
            )
        elif turn.attachments and not (turn.text or "").strip() and not turn.payload:
            self._attachments(d, turn.attachments, turn.phone_vouched)
        else:
            await self._route(d, turn.text or "", turn.payload)
        d.meta.setdefault("flow", d.flow)
        d.meta.setdefault("step", d.step)
        return TurnOutcome(
            replies=compose(d.replies),
            state=d.state(),
            handoff=d.handoff,
            meta=d.meta,
            events=d.events,
        )

    def _in_queue(self, d: Dialog, text: str, payload: str | None) -> bool:
        """Waiting for a human, the customer may change their mind; anything else waits
        for the operator, unanswered by the bot."""
        command = payload if payload in (t.P_MENU, t.P_CANCEL) else None
        if command is None and not payload:
            command = _command_of(text)
        if command not in (t.P_MENU, t.P_CANCEL):
            return False
        d.end()
        d.say(t.QUEUED_CANCELLED + " " + t.MENU, *t.MENU_BUTTONS)
        return True

    def _rating(self, d: Dialog, text: str, payload: str | None) -> None:
        """1–5 after an operator closed the chat: recorded for the operator's statistics."""
        raw = payload[len(SURVEY_PREFIX) :] if payload else text.strip()
        if raw not in ("1", "2", "3", "4", "5"):
            return
        rating = int(raw)
        d.meta["rating"] = rating
        d.record(events.CSAT_RATED, rating=rating)
        # The menu itself, not a «Меню» button: the chat with the operator is over.
        d.say(t.SURVEY_THANKS if rating >= 3 else t.SURVEY_THANKS_LOW, *t.MENU_BUTTONS)

    def _attachments(self, d: Dialog, kinds: tuple[str, ...], phone_vouched: bool) -> None:
        """A photo, sticker or voice note: the bot cannot read it, so it says so and keeps
        the dialog where it was; a shared phone number is thanked for (the inbox has
        already linked it to the contact)."""
        if set(kinds) == {"contact"} and phone_vouched:
            d.say(t.PHONE_SAVED, *t.MENU_BUTTONS)
            return
        d.meta["attachment_kinds"] = list(kinds)
        d.say(t.TEXT_ONLY, *t.MENU_BUTTONS)

    def _greet(self, d: Dialog) -> None:
        d.end()
        d.say(d.fmt(t.GREETING), *t.MENU_BUTTONS)

    def _menu(self, d: Dialog, text: str = t.MENU) -> None:
        d.end()
        d.say(d.fmt(text), *t.MENU_BUTTONS)

    async def _route(self, d: Dialog, text: str, payload: str | None) -> None:
        if not payload and (text == "/start" or text.startswith("/start ")):
            # A messenger's first contact (Telegram «Start», a deep link «/start <payload>»).
            d.meta["command"] = "start"
            self._greet(d)
            return
        wish = reminders.wanted(d, text, payload)
        if wish is not None:
            # «стоп» / «отписаться» / the reminder's button: before the commands, since
            # «стоп» outside a flow means «no more reminders», not «cancel».
            await reminders.handle(d, wish, payload)
            return
        command = payload if payload in (t.P_MENU, t.P_BACK, t.P_CANCEL) else None
        if command is None and not payload:
            command = _command_of(text)
        if command is not None:
            d.meta["command"] = command
            await self._command(d, command)
            return
        if payload in (t.P_READINGS, t.P_BALANCE, t.P_OPERATOR, t.P_APPEAL):
            d.meta["button"] = payload
            d.misses = 0
            await self._start(d, payload)
            return
        if d.flow in FLOWS:
            await self._in_flow(d, FLOWS[d.flow], text, payload)
            return
        if payload and payload.startswith(t.P_INTENT):
            # A topic offered after a miss: answer it as if it had been recognised.
            d.meta["button"] = payload
            await self._intent(d, payload[len(t.P_INTENT) :], text)
            return
        if payload == t.P_RESUME:
            # «Продолжить …» of a flow that has ended since: the menu, not silence.
            self._menu(d)
            return
        await self._free_text(d, text)

    async def _in_flow(self, d: Dialog, flow: ModuleType, text: str, payload: str | None) -> None:
        """A message while a flow waits: the step's input goes to the step, anything else
        is answered aside and the step offered again."""
        if payload == t.P_RESUME:
            d.meta["button"] = payload
            await flow.prompt(d, d.step or "")
            return
        if payload and payload.startswith(t.P_INTENT):
            d.meta["button"] = payload
            await self._intent(d, payload[len(t.P_INTENT) :], text, aside=flow)
        else:
            meaning = await self._aside_meaning(d, flow, text, payload)
            if meaning is None:
                await flow.handle(d, text, payload)
                return
            d.meta["aside"] = d.step
            await self._consult(d, text, meaning, aside=flow)
        if d.handoff:
            d.end()  # handed over: the flow is over, the operator takes it from here
        elif d.flow == flow.FLOW and not d.meta.get("reprompted"):
            await self._offer_resume(d, flow)

    async def _aside_meaning(
        self, d: Dialog, flow: ModuleType, text: str, payload: str | None
    ) -> Interpretation | None:
        """What the consultant makes of text that is not an answer to the waiting step;
        None when it is one (or may be one, and the consultant is not sure otherwise)."""
        expect = flow.WAITS.get(d.step or "")
        if payload or expect is None:
            return None  # a button of the step, or a step that takes any text
        shape = expect.shape(text, d.settings)
        if shape == "attempt":
            return None
        meaning = await self._understand(text)
        if shape == "maybe" and not self._sure(meaning):
            return None
        return meaning

    def _sure(self, meaning: Interpretation) -> bool:
        """A confident topic, task or request for an operator (never small talk: «Анна»
        may look like a greeting to a classifier)."""
        if not meaning.understood or meaning.confidence < SURE:
            return False
        kb = self.services.kb()
        return _flow_for(meaning.intent) is not None or (
            kb is not None and kb.is_topic(meaning.intent)
        )

    async def _offer_resume(self, d: Dialog, flow: ModuleType) -> None:
        """After the aside, in the same bubble: how to go on with the step, or leave."""
        what: str = flow.RESUME
        expect = flow.WAITS.get(d.step or "")
        if expect is None:
            # A step that takes any text (an older topic button pressed there): ask it.
            await flow.prompt(d, d.step or "")
            return
        d.add_to_last(
            t.RESUME.format(what=what, hint=d.fmt(expect.hint)),
            Button(t.RESUME_BUTTON.format(what=what), t.P_RESUME),
            t.BTN_MENU,
        )
        d.meta["resume"] = f"{flow.FLOW}:{d.step}"

    async def _command(self, d: Dialog, command: str) -> None:
        if command == t.P_MENU:
            self._menu(d)
        elif command == t.P_CANCEL:
            self._menu(d, t.CANCELLED if d.flow else t.MENU)
        elif d.flow in FLOWS and d.step in FLOWS[d.flow].PREVIOUS:
            step = FLOWS[d.flow].PREVIOUS[d.step]
            d.step = step
            await FLOWS[d.flow].prompt(d, step)
        else:
            self._menu(d)

    async def _start(self, d: Dialog, what: str) -> None:
        if what == t.P_OPERATOR:
            await handoff.begin(d)
        elif what == t.P_READINGS:
            await readings.begin(d)
        elif what == t.P_APPEAL:
            await appeal.begin(d)
        else:
            await balance.begin(d)

    async def _free_text(self, d: Dialog, text: str) -> None:
        await self._consult(d, text, await self._understand(text))

    async def _understand(self, text: str) -> Interpretation:
        """The consultant's reading of ``text``, bounded in cost (:func:`consultant_input`)
        and, past a few words, on the parser thread: a parse takes milliseconds, and the
        event loop serves every other conversation meanwhile. One thread, not a pool:
        parsing is pure Python, so parallel parses would only take turns at the GIL and,
        several at once, starve the event loop of it."""
        text = consultant_input(text)
        parse = self.services.understander.parse
        if len(text) < INLINE_CHARS:
            return parse(text)
        return await asyncio.get_running_loop().run_in_executor(_PARSER, parse, text)

    async def _consult(
        self, d: Dialog, text: str, meaning: Interpretation, aside: ModuleType | None = None
    ) -> None:
        """The consultant's answer to free text; ``aside`` is the flow it interrupts."""
        d.meta.update(
            intent=meaning.intent,
            confidence=meaning.confidence,
            alternatives=[list(a) for a in meaning.alternatives],
        )
        if meaning.profanity:
            d.meta["profanity"] = True
            d.record(events.PROFANITY_DETECTED)
        if meaning.profanity and not meaning.understood:
            d.say(t.PROFANITY_CALM, *t.MENU_BUTTONS, t.BTN_OPERATOR)
        elif meaning.understood:
            await self._intent(d, meaning.intent, text, aside=aside)
        else:
            faq.fallback(d, meaning)
        confidence = round(meaning.confidence, 4)
        if meaning.understood and not d.meta.get("fallback"):
            d.record(events.TEXT_RECOGNISED, intent=meaning.intent, confidence=confidence)
        else:
            # Not answered from the knowledge base: unsure, or a topic without an answer.
            guess = meaning.alternatives[0][0] if meaning.alternatives else meaning.intent
            step = "profanity" if meaning.profanity and not meaning.understood else "rephrase"
            d.record(
                events.TEXT_FALLBACK,
                intent=meaning.intent if meaning.understood else guess,
                confidence=confidence,
                step=d.meta.get("fallback", step),
            )

    async def _intent(
        self, d: Dialog, intent: str, text: str, aside: ModuleType | None = None
    ) -> None:
        target = _flow_for(intent)
        d.misses = 0
        if aside is not None and target == aside.FLOW:
            # «Хочу передать показания» while doing just that: the step again.
            d.meta["reprompted"] = True
            await aside.prompt(d, d.step or "")
        elif target is not None:
            await self._start(d, target)
        elif intent == "greeting" and aside is not None:
            d.say(t.HELLO_AGAIN)
        elif intent == "greeting":
            self._greet(d)
        elif intent == "thanks_bye":
            d.say(t.THANKS, t.BTN_MENU)
        elif not await faq.answer(d, intent, text=text):
            # A topic without an answer in this knowledge base: say so, offer the ways out.
            faq.fallback(d, Interpretation(intent, 0.0))


def consultant_input(text: str) -> str:
    """``text`` as the consultant reads it: at most ``CONSULTANT_CHARS`` characters, each
    run of more than ``WORD_LETTERS`` non-space characters cut to that many."""
    text = text[: CONSULTANT_CHARS * 2]  # no regex over more than this
    if len(text) > WORD_LETTERS:
        text = _LONG_WORD.sub(lambda m: m.group()[:WORD_LETTERS], text)
    return text[:CONSULTANT_CHARS]


def _command_of(text: str) -> str | None:
    """«меню», «/start», «отмена»: a command is a word or two, never a long text."""
    if len(text) > 40:
        return None
    return COMMANDS.get(normalize(text).removeprefix("/"))


def _flow_for(intent: str) -> str | None:
    return {
        "readings_submit": t.P_READINGS,
        "balance": t.P_BALANCE,
        "operator": t.P_OPERATOR,
    }.get(intent)
