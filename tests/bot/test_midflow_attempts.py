"""What counts as an attempt at each kind of waiting step (the rest is a question aside)."""

from __future__ import annotations

import pytest

from abonent.bot import attempts
from abonent.bot.dialog import Shape
from support import make_settings

SETTINGS = make_settings("sqlite+aiosqlite:///:memory:")


@pytest.mark.parametrize(
    ("judge", "text", "shape"),
    [
        (attempts.account, "1000000001", "attempt"),
        (attempts.account, "1000-000-ОО1", "attempt"),
        (attempts.account, "л/с 12345", "attempt"),
        (attempts.account, "мой лицевой счёт 1000000001, проверьте", "attempt"),
        (attempts.account, "10000000ab", "attempt"),
        (attempts.account, "12500", "attempt"),
        (attempts.account, "а как оплатить картой?", "aside"),
        (attempts.account, "до какого числа передавать показания", "aside"),
        (attempts.account, "спасибо", "aside"),
        (attempts.account, "оплатил 1500 рублей 3 дня назад а оплата так и не поступила", "aside"),
        (attempts.readings, "12500 5300", "attempt"),
        (attempts.readings, "день 12500 ночь 5300", "attempt"),
        (attempts.readings, "12.500", "attempt"),
        (attempts.readings, "8650,7 квт", "attempt"),
        (attempts.readings, "сколько стоит киловатт", "aside"),
        (attempts.readings, "до 25 числа можно передать?", "aside"),
        (attempts.yes_no, "Да", "attempt"),
        (attempts.yes_no, "нет, другой счёт", "attempt"),
        (attempts.yes_no, "да, всё верно!", "attempt"),
        (attempts.yes_no, "а сколько я должен", "aside"),
        (attempts.yes_no_or_account, "1000000002", "attempt"),
        (attempts.yes_no_or_readings, "9000 6100 5100", "attempt"),
        (attempts.yes_no_or_readings, "почему так много", "aside"),
        (attempts.contact, "+7 912 345-67-89", "attempt"),
        (attempts.contact, "name@mail.ru", "attempt"),
        (attempts.contact, "позвоните мне", "maybe"),
        (attempts.contact, "а когда вы ответите на моё обращение?", "aside"),
        (attempts.name, "Петрова Анна Сергеевна", "maybe"),
        (attempts.name, "как оплатить картой?", "aside"),
        (attempts.optional_account, "пропустить", "attempt"),
        (attempts.optional_account, "1000000001", "attempt"),
        (attempts.optional_account, "где найти номер лицевого счёта", "aside"),
    ],
)
def test_shape(judge: attempts.Judge, text: str, shape: Shape) -> None:
    assert judge(text, SETTINGS) == shape
