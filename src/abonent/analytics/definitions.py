"""What each figure of the statistics counts, in one place.

The reports page shows the Russian label and, on hover, the Russian definition; the
README's table gives the same labels with the definition in English. A test checks
that every figure here is in the README, so the words never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    label: str  # as the page shows it
    ru: str
    en: str


FIGURES: dict[str, Figure] = {
    "messages": Figure(
        "Сообщения",
        "Сообщения клиентов, бота и операторов по каналам (внутренние заметки не входят).",
        "Messages written by customers, the bot and operators, per channel "
        "(operators' internal notes are not counted).",
    ),
    "conversations": Figure(
        "Диалоги",
        "Диалоги, в которых клиент написал хотя бы одно сообщение; диалог относится к дню "
        "первого сообщения клиента. Чат с ботом, молчащий сутки, закрывается, и следующее "
        "сообщение начинает новый диалог.",
        "Conversations in which the customer wrote at least once, counted on the day of "
        "the customer's first message; a chat with the bot silent for a day is closed, so "
        "the next message starts a new conversation.",
    ),
    "bot_only": Figure(
        "Решено ботом",
        "Диалоги периода, которые ни разу не передавались операторам.",
        "Conversations of the period that never reached the operators' queue.",
    ),
    "to_operator": Figure(
        "Переданы операторам",
        "Диалоги периода, которые хотя бы раз были переданы в очередь операторов.",
        "Conversations of the period that reached the operators' queue at least once.",
    ),
    "unique_customers": Figure(
        "Уникальные клиенты",
        "Разные клиенты, написавшие за период (один клиент в нескольких мессенджерах — один).",
        "Different customers who wrote in the period (one person on several "
        "messengers, once joined, is one customer).",
    ),
    "returning_customers": Figure(
        "Вернувшиеся клиенты",
        "Клиенты периода, которые уже писали раньше — в другой день, до периода или в нём.",
        "Customers of the period who had already written on an earlier day, before or "
        "within the period.",
    ),
    "busiest_day": Figure(
        "Самый загруженный день",
        "День периода с наибольшим числом сообщений клиентов.",
        "The day of the period with the most customer messages.",
    ),
    "busiest_hour": Figure(
        "Самый загруженный час",
        "Час суток, на который за период пришлось больше всего сообщений клиентов.",
        "The hour of the day that had the most customer messages over the period.",
    ),
    "night_share": Figure(
        "Доля ночных обращений",
        "Доля сообщений клиентов, написанных ночью (по умолчанию 23:00–07:00).",
        "The share of customer messages written at night (23:00–07:00 by default).",
    ),
    "free_text": Figure(
        "Вопросы своими словами",
        "Сообщения клиентов вне сценариев (не кнопки и не ввод номера счёта или показаний), "
        "которые разбирал консультант.",
        "Customer messages outside the flows (not buttons, not an account number or "
        "readings being entered) that the consultant interpreted.",
    ),
    "recognised": Figure(
        "Распознано",
        "Вопросы своими словами, на которые бот ответил по базе знаний или сценарием.",
        "Free-text messages the bot answered from its knowledge base or with a flow.",
    ),
    "fallback": Figure(
        "Не распознано",
        "Вопросы своими словами, на которые бот не ответил: попросил переформулировать "
        "или предложил оператора, обращение и телефон.",
        "Free-text messages the bot could not answer: it asked to rephrase or offered an "
        "operator, an appeal and the call centre.",
    ),
    "recognition_rate": Figure(
        "Доля распознанных",
        "Распознано ÷ вопросы своими словами.",
        "Recognised ÷ free-text messages.",
    ),
    "topics": Figure(
        "Темы",
        "Распознанные вопросы по темам; доля — от всех распознанных.",
        "Recognised free-text messages by topic; the share is of all recognised ones.",
    ),
    "flows": Figure(
        "Сценарии",
        "Сколько раз клиенты начали сценарий (кнопкой или словами) и сколько довели до конца: "
        "показания приняты, баланс сообщён, обращение зарегистрировано.",
        "How often customers started a flow (by button or in words) and how often it "
        "ended with its result: readings accepted, balance told, appeal registered.",
    ),
    "readings": Figure(
        "Переданы показания",
        "Показания, принятые ботом, по каналам; доля мессенджеров — всё, кроме веб-чата.",
        "Readings the bot accepted, per channel; the messengers' share is all but the web chat.",
    ),
    "links_sent": Figure(
        "Отправлено ссылок",
        "Ссылки в ответах бота (каждая ссылка каждого ответа отслеживается отдельно).",
        "Links in the bot's answers (each link of each answer is tracked on its own).",
    ),
    "links_clicked": Figure(
        "Переходы по ссылкам",
        "Отправленные за период ссылки, по которым клиент перешёл хотя бы раз.",
        "Links sent in the period that the customer opened at least once.",
    ),
    "click_through": Figure(
        "Кликабельность",
        "Переходы по ссылкам ÷ отправлено ссылок (не больше 100%).",
        "Links clicked ÷ links sent (never above 100%).",
    ),
    "profanity": Figure(
        "Ненормативная лексика",
        "Сообщения клиентов с нецензурными словами; доля — от вопросов своими словами.",
        "Customer messages with obscene words; the share is of free-text messages.",
    ),
    "first_response": Figure(
        "Время первого ответа",
        "От передачи диалога в очередь до первого сообщения оператора; время с ботом не "
        "считается, диалоги без ответа оператора не входят (они — «без ответа»).",
        "From the hand-off to the operators' queue to the first operator message; time "
        "with the bot never counts, and conversations no operator answered are left out "
        "(they are 'unanswered').",
    ),
    "response_delay": Figure(
        "Время ответа",
        "Каждый следующий ответ: от первого сообщения клиента, оставшегося без ответа, "
        "до следующего сообщения оператора.",
        "Every later answer: from the customer's first unanswered message to the next "
        "operator message.",
    ),
    "in_hours": Figure(
        "В рабочее время",
        "То же время ответа, но считаются только минуты внутри рабочих часов операторов.",
        "The same response time counting only the minutes inside the operators' working hours.",
    ),
    "unanswered": Figure(
        "Без ответа",
        "Переданные операторам диалоги, закрытые без единого сообщения оператора.",
        "Handed-over conversations that were closed without a single operator message.",
    ),
    "handled": Figure(
        "Принято диалогов",
        "Сколько раз оператор получил диалог: взял сам, назначен автоматически или "
        "старшим оператором, получил переводом.",
        "How often the operator got a conversation: took it, was given it automatically "
        "or by a supervisor, or by a transfer.",
    ),
    "replies": Figure(
        "Ответов",
        "Сообщения оператора клиентам.",
        "The operator's messages to customers.",
    ),
    "transfers": Figure(
        "Переводов",
        "Диалоги, которые оператор передал коллеге или группе.",
        "Conversations the operator passed to a colleague or a group.",
    ),
    "handle_time": Figure(
        "Время обслуживания",
        "Среднее время от первого назначения оператора до закрытия диалога.",
        "The average time from the first assignment to an operator to the close.",
    ),
    "online": Figure(
        "На линии / перерыв",
        "Время в статусах «На линии» и «Перерыв» за период; остальное — «Не в сети».",
        "Time in the statuses online and break within the period; the rest is offline.",
    ),
    "queued": Figure(
        "В очередь",
        "Сколько раз бот передал клиента в очередь операторов.",
        "How often the bot handed a customer to the operators' queue.",
    ),
    "abandoned": Figure(
        "Ушли из очереди",
        "Клиенты, вышедшие из очереди («меню», «отмена») до того, как оператор взял диалог.",
        "Customers who left the queue ('menu', 'cancel') before an operator took the conversation.",
    ),
    "queue_wait": Figure(
        "Ожидание в очереди",
        "От передачи в очередь до момента, когда оператор получил диалог (или клиент ушёл).",
        "From the hand-off to the moment an operator got the conversation (or the customer left).",
    ),
    "csat": Figure(
        "Оценка клиентов",
        "После закрытия диалога оператором клиент оценивает помощь от 1 до 5; доля ответивших "
        "— от опрошенных, средняя — по ответившим.",
        "After an operator closes a conversation the customer rates the help 1–5; the "
        "answered share is of those asked, the average of those who answered.",
    ),
}
