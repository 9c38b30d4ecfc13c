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
ASK_SINGLE = (
    "Введите текущие показания счётчика в кВт·ч (можно с десятичной частью через запятую).\n"
    "Предыдущие показания: {previous}."
)
ASK_ZONES = (
    "Введите показания {count} зон через пробел в порядке: {order} — например: {example}.\n"
    "Можно и по одной.\nПредыдущие показания: {previous}."
)
ASK_NEXT_ZONE = "Теперь показания зоны «{zone}». Предыдущее: {previous}."
READINGS_UNREADABLE = (
    "Не вижу в сообщении показаний. Введите, пожалуйста, числа с табло счётчика, "
    "например: {example}."
)
READINGS_TOO_MANY = (
    "По вашему тарифу нужно {count} показания: {order}. Введите, пожалуйста, заново."
)
READINGS_TOO_MANY_ONE = "По вашему тарифу нужно одно показание. Введите, пожалуйста, одно число."
READINGS_LOWER = (
    "Показание{zone} {given} меньше предыдущего принятого — {previous} (от {date}). "
    "Показания не могут уменьшаться: проверьте, пожалуйста, цифры на табло "
    "(без цифр после запятой, если они выделены цветом) и введите заново."
)
READINGS_JUMP = (
    "Получается расход {total} кВт·ч за {days} дн. — это заметно больше обычного. "
    "Проверьте, пожалуйста, показания. Всё верно?"
)
JUMP_YES = "Да, всё верно"
JUMP_NO = "Ввести заново"
READINGS_ACCEPTED = "Показания приняты. Спасибо!\nЛицевой счёт {number}, дата: {date}."
READINGS_ZONE_LINE = (
    "{zone}: {current} кВт·ч, расход {consumption} кВт·ч с {since}; "
    "{consumption} × {tariff} = {cost}"
)
READINGS_ZONE_LINE_FIRST = "{zone}: {current} кВт·ч"
READINGS_TOTAL = "Итого расход {consumption} кВт·ч на сумму {cost}."
READINGS_ERROR = (
    "Не удалось сохранить показания: {reason}. Попробуйте ещё раз или обратитесь к оператору."
)

BALANCE_HEADER = "Лицевой счёт {number} ({holder}, {address})."
BALANCE_DEBT = "К оплате: {amount}.\nОплатить нужно до 15-го числа следующего месяца."
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
QUEUED_CANCELLED = "Хорошо, вы вышли из очереди к оператору."

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
