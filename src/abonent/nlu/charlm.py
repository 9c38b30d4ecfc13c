"""A character trigram model of Russian words: how Russian does a string look?

Used to choose between the readings of a Latin string (transliteration, wrong layout,
as is). Trained on a small built-in seed text plus the knowledge-base examples; the
words are scored with word-boundary markers, so «ш» alone is unlikely but «и» is not.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

_WORD = re.compile(r"[а-яё]+")
BOS = "^"
EOS = "$"

# Common words of everyday Russian and of the domain: keeps the model sane even with a
# tiny knowledge base (tests), the knowledge-base examples add the rest.
SEED_TEXT = """
и в во не на я он она оно они мы вы ты что как так это то тот та те все всё весь вся
был была были будет быть есть нет да ли же бы по за из от до для при про под над об
у к с со о а но или если когда где куда откуда почему зачем сколько какой какая какие
который чтобы уже еще ещё очень можно нужно надо нельзя хочу хотим могу может могут
мне меня мой моя мое мои наш наша наши ваш ваша ваши вас вам нам нас его ее её их
здравствуйте привет добрый день вечер утро доброе спасибо пожалуйста до свидания
подскажите скажите помогите объясните сделайте пришлите позвоните перезвоните
свет электричество электроэнергия энергия счетчик счетчика счетчики прибор учета
показания показаний передать передача передала передал принять принимаются
оплата оплатить оплатила оплатил платеж платить заплатить деньги рублей рубль сумма
долг долга задолженность баланс переплата квитанция квитанции счет счета лицевой
договор договора заключить переоформить расторгнуть собственник квартира квартиры дом
дома улица район город деревня поселок участок гараж баня дача новый старый
тариф тарифы цена стоимость стоит киловатт квт час ночь ночной дневной зона
норматив нормативы потребление человек прописан проживает коэффициент
отключение отключили отключат отключить подключить подключение авария света
замена заменить поменять установка установить сломался сгорел пломба опломбировать
поверка поверки срок истек закончился межповерочный интервал паспорт
личный кабинет приложение сайт пароль логин вход войти зарегистрироваться ошибка
номер телефон адрес офис часы работы почта электронная оператор специалист человек
жалоба претензия обращение заявление приемная руководство сотрудник
вакансии работа резюме устроиться закупки тендер поставщик компания информация
льготы субсидия компенсация пенсионер инвалид ветеран многодетные скидка
перерасчет пересчитать начислили начисление неправильно отсутствие справка
присоединение технологическое мощность заявка сетевая организация
месяц месяца месяцев число числа года год неделя сегодня завтра вчера сейчас
хорошо плохо понятно ясно ладно нормально опять снова уже давно почему
"""


class CharLM:
    """Interpolated character trigram model with add-one smoothing at the unigram level."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.tri: Counter[str] = Counter()
        self.bi: Counter[str] = Counter()
        self.uni: Counter[str] = Counter()
        self.ctx2: Counter[str] = Counter()
        self.ctx1: Counter[str] = Counter()
        self.total = 0
        self._memo: dict[str, float] = {}
        self.add(SEED_TEXT)
        for text in texts:
            self.add(text)
        self._alphabet = max(len(self.uni), 34)

    def add(self, text: str) -> None:
        for word in _WORD.findall(text.lower()):
            padded = BOS + BOS + word.replace("ё", "е") + EOS
            for i in range(2, len(padded)):
                a, b, c = padded[i - 2], padded[i - 1], padded[i]
                self.tri[a + b + c] += 1
                self.ctx2[a + b] += 1
                self.bi[b + c] += 1
                self.ctx1[b] += 1
                self.uni[c] += 1
                self.total += 1
        self._alphabet = max(len(self.uni), 34)
        self._memo = {}

    def char_logprob(self, a: str, b: str, c: str) -> float:
        key = a + b + c
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        value = self._char_logprob(a, b, c)
        if len(self._memo) < 500_000:
            self._memo[key] = value
        return value

    def _char_logprob(self, a: str, b: str, c: str) -> float:
        p1 = (self.uni.get(c, 0) + 1) / (self.total + self._alphabet + 1)
        ctx1 = self.ctx1.get(b, 0)
        p2 = self.bi.get(b + c, 0) / ctx1 if ctx1 else 0.0
        ctx2 = self.ctx2.get(a + b, 0)
        p3 = self.tri.get(a + b + c, 0) / ctx2 if ctx2 else 0.0
        return math.log(0.6 * p3 + 0.3 * p2 + 0.1 * p1)

    def word_logprob(self, word: str) -> float:
        """Total log-probability of a (lower-case Cyrillic) word, boundaries included."""
        padded = BOS + BOS + word + EOS
        return sum(
            self.char_logprob(padded[i - 2], padded[i - 1], padded[i])
            for i in range(2, len(padded))
        )

    def word_score(self, word: str) -> float:
        """Mean log-probability per character: comparable across lengths."""
        return self.word_logprob(word) / (len(word) + 1)
