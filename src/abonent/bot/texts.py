"""Every sentence the self-service bot says, in one place an editor can read.

Placeholders in braces are filled from the company profile and the dialog; keeping
the texts apart from the handlers lets a utility reword them without reading code.
"""

from __future__ import annotations

from abonent.core.types import Button

# Button payloads: stable ids the channels carry back; titles may change freely.
P_MENU = "menu"
P_READINGS = "readings"
P_BALANCE = "balance"
P_OPERATOR = "operator"
P_YES = "yes"
P_NO = "no"
P_BACK = "back"
P_CANCEL = "cancel"
P_RETRY = "retry"
P_ACCOUNT = "acct:"

BTN_READINGS = Button("Передать показания", P_READINGS)
BTN_BALANCE = Button("Узнать баланс", P_BALANCE)
BTN_OPERATOR = Button("Связаться с оператором", P_OPERATOR)
BTN_MENU = Button("Меню", P_MENU)
BTN_BACK = Button("Назад", P_BACK)
BTN_CANCEL = Button("Отмена", P_CANCEL)
MENU_BUTTONS = (BTN_READINGS, BTN_BALANCE, BTN_OPERATOR)

GREETING = (
    "Здравствуйте! Я виртуальный помощник компании «{company}».\n"
    "Помогу передать показания счётчика, узнать баланс лицевого счёта и отвечу на вопросы "
    "об оплате, тарифах, счётчиках и отключениях — просто напишите их.\n"
    "Операторы работают: {hours}.\n"
    "Аварийная служба (круглосуточно): {emergency}."
)
MENU = "Чем могу помочь? Выберите действие:"
CANCELLED = "Хорошо, отменил. Чем ещё могу помочь?"
THANKS = "Пожалуйста! Если появятся вопросы — пишите, я на связи."
NOT_UNDERSTOOD = (
    "Извините, я не понял вопрос. Сформулируйте его, пожалуйста, иначе или выберите действие:"
)
NOT_UNDERSTOOD_AGAIN = (
    "К сожалению, я снова не понял. Могу передать ваш вопрос оператору — "
    "или позвоните в контакт-центр: {call_center}."
)

ASK_ACCOUNT = (
    "Введите номер лицевого счёта — {length} цифр.\n"
    "Он указан в верхней части квитанции и в личном кабинете."
)
ASK_ACCOUNT_KNOWN = "Выберите лицевой счёт или введите другой номер ({length} цифр):"
ACCOUNT_NOT_DIGITS = (
    "Номер лицевого счёта состоит только из цифр ({length} цифр). "
    "Проверьте, пожалуйста, номер в квитанции — он указан в её верхней части."
)
ACCOUNT_WRONG_LENGTH = (
    "В номере лицевого счёта должно быть {length} цифр, а в вашем — {digits}. "
    "Проверьте, пожалуйста, номер в квитанции — он указан в её верхней части."
)
ACCOUNT_UNKNOWN = (
    "Лицевой счёт {number} не найден. Проверьте, пожалуйста, номер: он указан в верхней "
    "части квитанции и в личном кабинете."
)
ACCOUNT_TYPO = (
    "Лицевой счёт {number} не найден. Возможно, вы имели в виду свой счёт {guess}, "
    "который называли раньше?"
)
ACCOUNT_GIVE_UP = (
    "Не получается найти лицевой счёт. Я могу передать вопрос оператору — он поможет "
    "разобраться. Или позвоните в контакт-центр: {call_center}."
)
CONFIRM_ACCOUNT = "Лицевой счёт {number}\nВладелец: {holder}\nАдрес: {address}\n\nЭто ваш счёт?"
CONFIRM_YES = "Да, верно"
CONFIRM_NO = "Нет, другой счёт"

READINGS_WINDOW_CLOSED = (
    "Показания принимаются с {first} по {last} число каждого месяца. "
    "Сегодня {today} — пожалуйста, передайте показания в эти дни."
)
# The readings prompts and refusals say what ``parse_readings`` really accepts: numbers
# without spaces or dots inside, a space between zones, up to two digits after a comma.
# Every {example} is built from the account's own readings and is accepted typed back.
ASK_SINGLE = (
    "Введите текущее показание счётчика в кВт·ч, например: {example}. "
    "Цифры после запятой, если нужны, — через запятую (не больше двух).\n"
    "Предыдущие показания: {previous}."
)
ASK_ZONES = (
    "Введите показания {count} зон через пробел в порядке: {order} — например: {example}.\n"
    "Можно и по одной. Цифры после запятой, если нужны, — через запятую (не больше двух).\n"
    "Предыдущие показания: {previous}."
)
ASK_NEXT_ZONE = "Теперь показание зоны «{zone}», например: {example}. Предыдущее: {previous}."
READINGS_UNREADABLE = (
    "Не вижу в сообщении показаний. Введите, пожалуйста, числа с табло счётчика, "
    "например: {example}. Внутри числа не нужно ни пробелов, ни точек."
)
READINGS_TOO_MANY = (
    "По вашему тарифу нужно {count} показания: {order}. Введите их заново через пробел, "
    "например: {example}. Внутри числа пробелов нет: 12500, а не 12 500."
)
READINGS_TOO_MANY_ONE = (
    "По вашему тарифу нужно одно показание. Введите одно число без пробелов внутри, "
    "например: {example}."
)
# One line per zone gone down, then the _AGAIN line: all in one bubble.
READINGS_LOWER = "Показание{zone} {given} меньше предыдущего принятого — {previous}{since}."
READINGS_LOWER_AGAIN_ONE = (
    "Показания счётчика не уменьшаются: проверьте, пожалуйста, цифры на табло "
    "и введите показание заново, например: {example}."
)
READINGS_LOWER_AGAIN = (
    "Показания счётчика не уменьшаются: проверьте, пожалуйста, цифры на табло и введите "
    "показания заново через пробел в порядке {order}, например: {example}."
)
READINGS_JUMP = (
    "Получается расход {total} кВт·ч за {days} — это заметно больше обычного. "
    "Проверьте, пожалуйста, показания. Всё верно?"
)
READINGS_JUMP_TODAY = (
    "Получается расход {total} кВт·ч по сравнению с показаниями, принятыми сегодня, — "
    "это заметно больше обычного. Проверьте, пожалуйста, показания. Всё верно?"
)
JUMP_YES = "Да, всё верно"
JUMP_NO = "Ввести заново"
# A second submission in one billing period replaces the first.
READINGS_ALREADY = "Показания за этот период уже были переданы {date}: {values}. Заменить?"
REPLACE_YES = "Заменить"
REPLACE_NO = "Оставить прежние"
REPLACE_YES_WORDS = frozenset({"заменить", "заменить показания", "замени", "заменяю"})
REPLACE_NO_WORDS = frozenset({"оставить", "оставить прежние", "оставь", "не заменять", "не надо"})
READINGS_REPLACING = "Новые показания заменят переданные {date}: {values}."
READINGS_KEPT = "Хорошо, оставляем показания, переданные {date}: {values}."
HINT_REPLACE_READINGS = "ответьте, заменить ли переданные показания: «заменить» или «оставить»"
READINGS_ACCEPTED = "Показания приняты. Спасибо!\nЛицевой счёт {number}, дата: {date}."
READINGS_REPLACED = "Показания заменены. Спасибо!\nЛицевой счёт {number}, дата: {date}."
# Billing did not answer: the readings are kept and passed on later (billing/queue.py).
READINGS_QUEUED = (
    "Показания приняты и будут переданы в биллинг, как только он станет доступен, — "
    "передавать их ещё раз не нужно. Спасибо!\nЛицевой счёт {number}, дата: {date}."
)
READINGS_QUEUED_ESTIMATE = (
    "Расход рассчитан по последним известным показаниям; окончательный расчёт — в квитанции."
)
READINGS_ZONE_LINE = (
    "{zone}: {current} кВт·ч, расход {consumption} кВт·ч с {since}; "
    "{consumption} × {tariff} = {cost}"
)
# Without a configured price the cost is not told.
READINGS_ZONE_LINE_NO_PRICE = "{zone}: {current} кВт·ч, расход {consumption} кВт·ч с {since}"
READINGS_ZONE_LINE_FIRST = "{zone}: {current} кВт·ч"
READINGS_TOTAL = "Итого расход {consumption} кВт·ч на сумму {cost}."
READINGS_TOTAL_NO_PRICE = "Итого расход {consumption} кВт·ч."
READINGS_ERROR = (
    "Не удалось сохранить показания: {reason}. Попробуйте ещё раз или обратитесь к оператору."
)

# --- the tariffs question, answered with the configured prices (bot/answers.py)
PLAN_NAMES = {"single": "однотарифный", "two_zone": "двухзонный", "three_zone": "трёхзонный"}
TARIFFS_HEADER = "Тарифы «{company}» за 1 кВт·ч:"
TARIFF_YOURS = "Ваш тариф — {plan}"
TARIFF_OTHERS = "Другие тарифы:"
TARIFF_SINGLE = "{plan}: {price}."
TARIFF_ZONES = "{plan}:"
TARIFF_ZONE_LINE = "• {zone}{hours} — {price}"
TARIFF_LOCAL_TIME = "Часы зон — по местному времени."
TARIFF_VOLUME = (
    "С 2025 года цена зависит и от объёма потребления: выше порогов (предельные — "
    "3 900 и 6 000 кВт·ч в месяц) действуют свои ставки."
)
TARIFF_SWITCH = (
    "Перейти на другой тариф поможет оператор; для двух- и трёхзонного тарифа нужен "
    "счётчик, который ведёт учёт по зонам суток."
)

BALANCE_HEADER = "Лицевой счёт {number} ({holder}, {address})."
BALANCE_DEBT = "К оплате: {amount}.\nОплатить нужно до 15-го числа следующего месяца."
# The billing gave the account's due date: {due} is «25 декабря».
BALANCE_DEBT_DUE = "К оплате: {amount}.\nОплатить нужно до {due}."
BALANCE_DEBT_OVERDUE = "К оплате: {amount}.\nСрок оплаты был до {due}."
# Billing is down and the balance is what it told at {time} {date} (billing/http.py).
BALANCE_AS_OF = (
    "По данным на {time} {date}; биллинг сейчас недоступен, сумма может быть уже другой."
)
BALANCE_OVERPAID = "Переплата: {amount}. Она будет учтена в следующих начислениях."
BALANCE_ZERO = "Задолженности нет."
BALANCE_PAY = "Оплатить онлайн: {link}"

BILLING_DOWN = (
    "Извините, сейчас не удаётся получить данные лицевого счёта. Попробуйте чуть позже "
    "или обратитесь к оператору."
)

HANDOFF_OPEN = (
    "Передаю разговор оператору. Вы {position}-й в очереди — оператор ответит здесь же. "
    "Пока ждёте, можете описать вопрос подробнее. Чтобы выйти из очереди, напишите «меню»."
)
HANDOFF_CLOSED = (
    "Сейчас операторы не работают (часы работы: {hours}). Ваше сообщение сохранено — "
    "оператор ответит здесь в рабочее время.\n"
    "Если вопрос срочный, позвоните в контакт-центр: {call_center}."
)
HANDOFF_RECEPTION = "Письменное обращение можно оставить в виртуальной приёмной: {link}"
HANDOFF_EMERGENCY = "При аварии и отключении электроэнергии звоните: {emergency}."
TEXT_ONLY = (
    "Я понимаю только текстовые сообщения: фото, голосовые, стикеры и файлы прочитать не могу. "
    "Напишите, пожалуйста, вопрос текстом. Если вложение нужно специалисту — "
    "нажмите «Связаться с оператором», он его увидит."
)
PHONE_SAVED = "Спасибо, номер телефона сохранён. Чем могу помочь?"
OPERATOR_JOINED = "К диалогу подключился оператор {name}."
BACK_TO_BOT = "Оператор завершил разговор, я снова на связи. Чем ещё могу помочь?"
CONVERSATION_CLOSED = (
    "Диалог завершён. Спасибо за обращение! Если появятся вопросы — просто напишите."
)
QUEUED_CANCELLED = "Хорошо, вы вышли из очереди к оператору."
SURVEY_QUESTION = "Оцените, пожалуйста, как вам помогли: от 1 (плохо) до 5 (отлично)."
SURVEY_SCORES = ("1 — плохо", "2", "3", "4", "5 — отлично")
SURVEY_THANKS = "Спасибо за оценку! Если появятся вопросы — просто напишите."
SURVEY_THANKS_LOW = (
    "Спасибо за оценку. Жаль, что помочь не удалось: напишите, что осталось нерешённым, "
    "и мы разберёмся."
)

# --- the consultant (knowledge-base answers and the honest fallback)
P_APPEAL = "appeal"
P_INTENT = "intent:"
BTN_APPEAL = Button("Написать обращение", P_APPEAL)
REPHRASE = (
    "Извините, я не совсем понял вопрос. Переформулируйте его, пожалуйста, "
    "или выберите подходящую тему:"
)
GIVE_UP = (
    "К сожалению, я не смог разобраться в вопросе. Вот как можно получить ответ:\n"
    "• написать оператору здесь, в чате;\n"
    "• оставить письменное обращение в виртуальной приёмной — вы получите его номер;\n"
    "• позвонить в контакт-центр: {call_center}."
)
PERSONAL_CASE = (
    "Чтобы разобраться именно в вашем случае, нужен оператор: он проверит данные "
    "лицевого счёта. Передаю разговор."
)
PROFANITY_CALM = (
    "Понимаю, ситуация неприятная. Давайте попробуем её решить: опишите, пожалуйста, "
    "что случилось, или выберите действие."
)
LINKS_HEADER = "Ссылки:"

# --- the virtual reception (a written appeal)
APPEAL_ASK_NAME = (
    "Оформим письменное обращение в виртуальную приёмную {company}. "
    "Как к вам обращаться? Напишите фамилию, имя и отчество."
)
APPEAL_ASK_CONTACT = "Укажите телефон или e-mail для ответа."
APPEAL_BAD_CONTACT = (
    "Не похоже на телефон или e-mail. Напишите, например, +7 912 345-67-89 или name@mail.ru."
)
APPEAL_ASK_ACCOUNT = "Номер лицевого счёта, если обращение касается его ({length} цифр):"
APPEAL_SKIP = "Пропустить"
APPEAL_ASK_TEXT = "Опишите суть обращения одним сообщением."
APPEAL_TOO_SHORT = "Опишите, пожалуйста, обращение подробнее — хотя бы одно предложение."
APPEAL_CONFIRM = (
    "Проверьте обращение:\n{name}\nКонтакт: {contact}\nЛицевой счёт: {account}\n\n{text}\n\n"
    "Отправить?"
)
APPEAL_SEND = "Отправить"
APPEAL_DONE = (
    "Обращение № {number} зарегистрировано. Ответ придёт на {contact}. "
    "Сохраните номер, чтобы узнать о ходе рассмотрения."
)
# Words that skip the optional account step of the appeal.
APPEAL_SKIP_WORDS = frozenset({"пропустить", "пропусти", "нет", "не знаю", "без счёта", "-"})

# --- a question in the middle of a flow: answered, then the step is offered again
P_RESUME = "resume"
# {what} is the flow in the accusative («передачу показаний»), {hint} what the step waits for.
RESUME = "Чтобы продолжить {what}, {hint}."
RESUME_BUTTON = "Продолжить {what}"
HELLO_AGAIN = "Здравствуйте!"
# What each waiting step waits for, as the end of the RESUME sentence.
HINT_ACCOUNT = "введите номер лицевого счёта ({length} цифр)"
HINT_CONFIRM_ACCOUNT = "ответьте, ваш ли это лицевой счёт: «да» или «нет»"
HINT_READINGS = "введите показания счётчика"
HINT_CONFIRM_READINGS = "подтвердите показания: «да» или «нет»"
HINT_APPEAL_NAME = "напишите, как к вам обращаться"
HINT_APPEAL_CONTACT = "укажите телефон или e-mail для ответа"
HINT_APPEAL_ACCOUNT = "укажите номер лицевого счёта или напишите «пропустить»"
HINT_APPEAL_CONFIRM = "проверьте обращение и отправьте его"
WHAT_READINGS = "передачу показаний"
WHAT_BALANCE = "проверку баланса"
WHAT_APPEAL = "оформление обращения"

# Reminders (automation/reminders, bot/flows/reminders.py): every reminder carries the
# button to turn them off; «стоп», «отписаться» and «подписаться» work as text too.
P_REMINDERS_OFF = "reminders:off"
P_REMINDERS_ON = "reminders:on"
BTN_REMINDERS_OFF = Button("Отписаться", P_REMINDERS_OFF)
BTN_REMINDERS_ON = Button("Снова получать напоминания", P_REMINDERS_ON)
REMINDERS_OFF = (
    "Готово: напоминания об оплате и показаниях больше не будут приходить. "
    "Если передумаете, напишите «подписаться». На ваши вопросы я по-прежнему отвечаю."
)
REMINDERS_ON = (
    "Готово: напоминания об оплате и о передаче показаний снова включены. "
    "Отключить их можно в любой момент: напишите «стоп» или «отписаться»."
)
