"""Account numbers as customers type them, and what may be shown before they prove who they are."""

from __future__ import annotations

import pytest

from abonent.billing.accounts import (
    AccountCheck,
    check_account_number,
    find_account_in_text,
    mask_account,
    mask_address,
    mask_holder,
    normalise_account_number,
    normalise_phone,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234567890", "1234567890"),
        ("  12-345-678 90 ", "1234567890"),
        ("123.456.789/0", "1234567890"),
        ("№ 1234567890", "1234567890"),
        ("л/с 1234567890", "1234567890"),
        ("Л/С: 1234567890", "1234567890"),
        ("лс1234567890", "1234567890"),
        ("ЛС 12 34 56 78 90", "1234567890"),
        ("л.с. 1234567890", "1234567890"),
        ("лицевой счет 1234567890", "1234567890"),
        ("Лицевой счёт № 1234567890", "1234567890"),
        ("счёт 1234567890", "1234567890"),
        # Cyrillic and Latin O, З for 3, l and I for 1.
        ("12345678О9", "1234567809"),
        ("12345678o9", "1234567809"),
        ("l2З456789O", "1234567890"),
        ("I234567890", "1234567890"),
        ("привет", "привет"),
        ("", ""),
    ],
)
def test_normalise_account_number(text: str, expected: str) -> None:
    assert normalise_account_number(text) == expected


def test_check_account_number() -> None:
    assert check_account_number("л/с 12-345-678 90", 10) == AccountCheck("1234567890", None, 10)
    assert check_account_number("12345", 10) == AccountCheck(None, "wrong_length", 5)
    assert check_account_number("123456789012", 10) == AccountCheck(None, "wrong_length", 12)
    assert check_account_number("мой счёт 123", 10) == AccountCheck(None, "not_digits", 3)
    assert check_account_number("добрый день", 10) == AccountCheck(None, "not_digits", 0)
    assert check_account_number("", 10).problem == "not_digits"
    # Non-ASCII digits are not account digits.
    assert check_account_number("١٢٣٤٥٦٧٨٩٠", 10).problem == "not_digits"
    assert check_account_number("1234567890", 10).ok


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("мой лс 12-345-678 90", "1234567890"),
        ("счет 1234567890 показания 123", "1234567890"),
        ("счет 1234567890 12500", "1234567890"),
        ("12-345-678 90 показания 12500", "1234567890"),
        ("показания 12500 5300, лс 12345 67890", "1234567890"),
        ("лс1234567890", "1234567890"),
        ("1234567890,12500,5300", "1234567890"),
        ("12500,5 1234567890", "1234567890"),
        ("т1 1234567890", "1234567890"),
        # The zone's digit is not glued to the number.
        ("т1 1234 56789", None),
        # Phones are not accounts.
        ("+7 912 345-67-89", None),
        ("8 (912) 345-67-89", None),
        ("1234567890.5", None),
        ("показания 12500 5300", None),
        ("25.10.2026", None),
        ("добрый день", None),
    ],
)
def test_find_account_in_text(text: str, expected: str | None) -> None:
    assert find_account_in_text(text, 10) == expected


def test_find_account_other_length() -> None:
    assert find_account_in_text("лс 123-456 и показания 12500", 6) == "123456"


@pytest.mark.parametrize(
    ("holder", "expected"),
    [
        ("Иванов Иван Иванович", "Ив**** И. И."),
        ("Иванов Иван", "Ив**** И."),
        ("Иванов", "Ив****"),
        ("Ли Ян", "Л* Я."),
        ("Петрова-Водкина Анна Сергеевна", "Пе*****-******* А. С."),
        ("ИП Петров Пётр Петрович", "ИП Пе**** П. П."),
        ("ООО «Ромашка»", "ООО «Ро*****»"),
        ('ООО "Северная звезда"', 'ООО "Се****** ******"'),
        ("ТСЖ Заря", "ТСЖ За**"),
        ("", ""),
    ],
)
def test_mask_holder(holder: str, expected: str) -> None:
    assert mask_holder(holder) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("г. Энск, ул. Ленина, д. 15, кв. 7", "г. Энск, ул. Ленина, д. **, кв. *"),
        (
            "г. Энск, ул. Ленина, дом 15, к. 2, кв. 107",
            "г. Энск, ул. Ленина, дом **, к. *, кв. ***",
        ),
        ("Энск, ул. 8 Марта, д.15/2, кв.7", "Энск, ул. 8 Марта, д.**/*, кв.*"),
        ("г. Энск, ул. Садовая, д. 3А, стр. 2", "г. Энск, ул. Садовая, д. **, стр. *"),
        (
            "г. Энск, пр. Победы, д. 9, корп. 2, кв. 77",
            "г. Энск, пр. Победы, д. *, корп. *, кв. **",
        ),
        ("123456, г. Энск, ул. Ленина 15", "123456, г. Энск, ул. Ленина **"),
        ("г. Энск, пр. Мира, 15-7", "г. Энск, пр. Мира, **-*"),
        ("пос. Луговой, ул. 2-я Парковая, д. 4", "пос. Луговой, ул. 2-я Парковая, д. *"),
        ("Энский р-н, СНТ «Рассвет», уч. 112", "Энский р-н, СНТ «Рассвет», уч. ***"),
        ("г. Энск", "г. Энск"),
    ],
)
def test_mask_address(address: str, expected: str) -> None:
    assert mask_address(address) == expected


def test_mask_account() -> None:
    assert mask_account("1234567890") == "******7890"
    assert mask_account("12345") == "*2345"
    assert mask_account("123") == "***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+79123456789", "+79123456789"),
        ("+7 (912) 345-67-89", "+79123456789"),
        ("8 (912) 345-67-89", "+79123456789"),
        ("79123456789", "+79123456789"),
        ("89123456789", "+79123456789"),
        ("9123456789", None),
        ("+1 555 123 4567", None),
        ("12345", None),
        ("", None),
    ],
)
def test_normalise_phone(text: str, expected: str | None) -> None:
    assert normalise_phone(text) == expected
