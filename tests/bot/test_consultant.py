"""The virtual consultant in the bot: knowledge-base answers with tracked links, the
honest fallback, the written virtual reception, profanity, flows started from free text."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from abonent.db.models import Appeal, Conversation, EventRecord, Message, TrackedLink
from abonent.db.session import Database
from abonent.nlu.kb import KnowledgeBase
from support import Customer, LiveServer, make_settings, payloads, texts


@pytest.fixture
def server(fresh_database_url: str) -> Iterator[LiveServer]:
    from support import TEST_COMPANY

    company = {
        **TEST_COMPANY,
        "working_hours": {"mon-sun": "00:00-24:00"},
        "links": {
            **TEST_COMPANY["links"],
            "payment": "https://pay.example/energo",
            "cabinet": "https://lk.energo.example",
        },
    }
    srv = LiveServer(make_settings(fresh_database_url, company=company))
    srv.settings.public_url = srv.url
    srv.start()
    yield srv
    srv.stop()


async def _rows(url: str, model: type) -> list:  # type: ignore[type-arg]
    db = Database(url)
    async with db.session() as session:
        rows = list(await session.scalars(select(model)))
    await db.dispose()
    return rows


async def test_a_question_is_answered_from_the_knowledge_base_with_tracked_links(
    server: LiveServer,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        reply = await me.say("как оплатить свет без комиссии")
        answer = texts(reply)
        assert "https://pay.example/energo" not in answer  # links go out tracked
        tracked = [w for w in answer.split() if w.startswith(f"{server.url}/r/")]
        assert tracked, answer
        links = await _rows(server.settings.database_url, TrackedLink)
        assert {link.intent for link in links} == {"payment_methods"}
        assert all(link.conversation_id == me.conversation_id for link in links)

        click = await http.get(tracked[0], follow_redirects=False)
        assert click.status_code == 302
        assert click.headers["location"] in {link.url for link in links}
        logged = await _rows(server.settings.database_url, EventRecord)
        clicks = [e for e in logged if e.type == "link.clicked"]
        assert len(clicks) == 1 and clicks[0].data["token"] == tracked[0].rsplit("/", 1)[1]
        assert clicks[0].conversation_id == me.conversation_id
        sent = [e.data["token"] for e in logged if e.type == "link.sent"]
        assert sorted(sent) == sorted(link.token for link in links)
        assert (await http.get(f"{server.url}/r/nope")).status_code == 404


async def test_wrong_layout_and_translit_reach_the_right_flow(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        assert "10 цифр" in texts(await me.say("gthtlfnm gjrfpfybz"))
        await me.say("меню")
        assert "10 цифр" in texts(await me.say("skolko ya dolzhen za svet"))


async def test_the_fallback_asks_to_rephrase_then_offers_the_ways_out(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        first = await me.say("какая завтра погода в москве")
        assert "Переформулируйте" in texts(first)
        assert "operator" in payloads(first)
        second = await me.say("а котики умеют летать")
        assert "не смог разобраться" in texts(second)
        assert "8 800 222-22-22" in texts(second)
        assert {"operator", "appeal"} <= set(payloads(second))
        messages = await _rows(server.settings.database_url, Message)
        misses = [m for m in messages if m.author == "customer" and (m.meta or {}).get("intent")]
        assert [m.meta["intent"] for m in misses] == ["fallback", "fallback"]


async def test_gibberish_is_never_offered_small_talk_as_topics(server: LiveServer) -> None:
    """«Did you mean» offers questions and tasks of the knowledge base only: never a
    greeting, a thank-you, a call for an operator (that has its own button) or the
    out-of-scope examples."""
    kb = KnowledgeBase.load()
    not_topics = {f"intent:{i.id}" for i in kb.intents.values() if i.kind == "service"}
    assert {"intent:greeting", "intent:thanks_bye", "intent:operator"} <= not_topics
    async with httpx.AsyncClient(timeout=30) as http:
        for text in ("фывапролдж", "ываываыва", "ппп"):
            me = Customer(server, http)
            await me.start()
            reply = await me.say(text)
            assert "Переформулируйте" in texts(reply), text
            offered = [p for p in payloads(reply) if p.startswith("intent:")]
            assert not set(offered) & (not_topics | {"intent:_out_of_scope"}), (text, offered)
            assert all(kb.is_topic(p.removeprefix("intent:")) for p in offered), offered
            assert payloads(reply).count("operator") == 1


async def test_a_topic_button_after_a_miss_answers_that_topic(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        await me.say("хрен его знает куда писать")
        answer = await me.press("intent:power_outage")
        assert "8 800 111-11-11" in texts(answer)  # the emergency phone


async def test_the_virtual_reception_registers_a_numbered_appeal(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        assert "Как к вам обращаться" in texts(await me.press("appeal"))
        await me.say("Петрова Анна Сергеевна")
        assert "Не похоже" in texts(await me.say("позвоните мне"))
        await me.say("+7 912 345-67-89")
        await me.press("skip")
        short = await me.say("плохо")
        assert "подробнее" in texts(short)
        text = "Прошу разобраться: второй месяц квитанция приходит на чужую фамилию."
        confirm = await me.say(text)
        assert text in texts(confirm) and "yes" in payloads(confirm)
        done = texts(await me.press("yes"))
        assert "Обращение № ВП-" in done
        appeals = await _rows(server.settings.database_url, Appeal)
        assert len(appeals) == 1
        appeal = appeals[0]
        assert appeal.number is not None and appeal.number in done
        assert (appeal.name, appeal.contact, appeal.text) == (
            "Петрова Анна Сергеевна",
            "+7 912 345-67-89",
            text,
        )
        assert appeal.conversation_id == me.conversation_id


async def test_profanity_gets_a_calm_answer_and_is_marked(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        reply = await me.say("да вы там охуели совсем")
        assert "Понимаю, ситуация неприятная" in texts(reply)
        messages = await _rows(server.settings.database_url, Message)
        flagged = [m for m in messages if (m.meta or {}).get("profanity")]
        assert len(flagged) == 1
        metrics = (await http.get(f"{server.url}/metrics")).text
        assert "abonent_profanity_total 1.0" in metrics
        seen = await http.get(
            f"{server.url}/api/operator/v1/conversations/{me.conversation_id}/messages",
            headers={"Authorization": "Bearer test-operator-token"},
        )
        shown = [m["text"] for m in seen.json()["messages"] if m["author"] == "customer"]
        assert shown and "охуели" not in shown[0] and shown[0].startswith("да вы там о")


async def test_personal_questions_with_specifics_go_to_an_operator(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        reply = texts(await me.say("оплатил 1500 рублей 3 дня назад а оплата так и не поступила"))
        assert "нужен оператор" in reply
        await asyncio.sleep(0)
        convs = await _rows(server.settings.database_url, Conversation)
        assert convs[0].status == "queued"


async def test_flows_started_from_free_text_still_take_their_numbers(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        assert "10 цифр" in texts(await me.say("хочу передать показания счетчика"))
        # digits inside a flow are the flow's input, never a question for the consultant
        assert "должно быть 10 цифр, а в вашем — 5" in texts(await me.say("12500"))


async def test_misses_are_kept_for_review_grouped_by_similarity(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for text in ("какая погода завтра", "какая погода в субботу", "расскажи анекдот"):
            me = Customer(server, http)
            await me.start()
            await me.say(text)
        r = await http.get(
            f"{server.url}/api/admin/v1/nlu/review",
            headers={"Authorization": "Bearer test-operator-token"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["messages"] == 3
        weather = next(g for g in body["groups"] if "какая погода завтра" in g["texts"])
        assert "какая погода в субботу" in weather["texts"]
        assert weather["intents"] and {"intent", "score"} <= set(weather["intents"][0])
