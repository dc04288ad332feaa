#!/usr/bin/env python3
"""Generate the shipped `math` and `qa` capability suites.

Run from the repository root (Python 3 standard library only):

    python3 suites/make_math_qa.py

It (re)writes

    suites/math/suite.toml   suites/math/items.jsonl
    suites/qa/suite.toml     suites/qa/items.jsonl

Output is deterministic: every random choice comes from `random.Random(SEED)` with
SEED = 20240611 (math uses SEED, QA uses SEED + 1), so rerunning the script reproduces the
files byte for byte. Changing anything here changes the suites' content hashes, so results
of the old and new versions are never mixed; bump `version` in the spec when you do.

math: grade-school word problems from templates written for this project (no benchmark
text). Each template draws its numbers, builds the question, and works out the answer step
by step; a separate checker then recomputes the answer from the drawn numbers by another
route (closed form, parsing the question's own times, repeated subtraction, ...) and the
script asserts that both agree and that the answer is a whole number or a terminating
decimal with at most two places. `cluster` is the template name.

qa: four-way multiple-choice general-knowledge questions written for this project (the
table QA below: question, correct answer, three distractors). The correct answer's position
is balanced across A-D (a seeded shuffle of an even split), distractors fill the other slots
in a seeded order. `cluster` is the topic.
"""

import json
import math
import os
import random
from collections import Counter
from fractions import Fraction as F

SEED = 20240611
MATH_PER_TEMPLATE = 12

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

PEOPLE = [
    ("Maya", "she", "her"), ("Liam", "he", "his"), ("Priya", "she", "her"),
    ("Carlos", "he", "his"), ("Aisha", "she", "her"), ("Tom", "he", "his"),
    ("Mei", "she", "her"), ("Jonas", "he", "his"), ("Sofia", "she", "her"),
    ("Kwame", "he", "his"), ("Hannah", "she", "her"), ("Diego", "he", "his"),
    ("Yuki", "she", "her"), ("Omar", "he", "his"), ("Elena", "she", "her"),
    ("Ben", "he", "his"), ("Fatima", "she", "her"), ("Noah", "he", "his"),
    ("Grace", "she", "her"), ("Ravi", "he", "his"),
]


def fmt(x):
    """A Fraction as a plain integer or a decimal with at most two places (asserted)."""
    x = F(x)
    if x.denominator == 1:
        return str(x.numerator)
    scaled = x * 100
    assert scaled.denominator == 1, f"answer {x} is not a two-place decimal"
    n = scaled.numerator
    sign = "-" if n < 0 else ""
    n = abs(n)
    s = f"{sign}{n // 100}.{n % 100:02d}"
    return s.rstrip("0")


def money(x):
    """Dollar amount for question text: $12 or $12.50."""
    x = F(x)
    if x.denominator == 1:
        return f"${x.numerator}"
    c = x * 100
    assert c.denominator == 1
    return f"${c.numerator // 100}.{c.numerator % 100:02d}"


def num(x):
    """Number for question text: 3 or 2.5."""
    return fmt(x)


def hours(x):
    return f"{num(x)} hour" + ("" if x == 1 else "s")


def terminating2(x):
    return (F(x) * 100).denominator == 1


class Retry(Exception):
    """The drawn numbers do not give a clean problem; draw again."""


# --------------------------------------------------------------------------------------
# math templates: each returns (question, answer Fraction, params); CHECKS recompute
# --------------------------------------------------------------------------------------

def t_shopping_change(r):
    name, _, _ = r.choice(PEOPLE)
    (i1, i2) = r.sample(["notebooks", "pens", "apples", "sandwiches", "juice boxes",
                         "candles", "socks", "markers", "muffins", "light bulbs"], 2)
    n1, n2 = r.randint(2, 6), r.randint(2, 6)
    p1 = F(r.randint(2, 16), 2)
    p2 = F(r.randint(2, 16), 4) if r.random() < 0.4 else F(r.randint(1, 9))
    spent1 = n1 * p1
    spent2 = n2 * p2
    total = spent1 + spent2
    if total >= 100:
        raise Retry
    bill = next(b for b in (20, 50, 100) if b > total)
    change = bill - total
    q = (f"{name} buys {n1} {i1} at {money(p1)} each and {n2} {i2} at {money(p2)} each. "
         f"{name} pays with a {money(bill)} bill. How much change, in dollars, does "
         f"{name} get back?")
    return q, change, dict(n1=n1, p1=p1, n2=n2, p2=p2, bill=bill)


def c_shopping_change(p):
    return p["bill"] - (p["n1"] * p["p1"] + p["n2"] * p["p2"])


def t_discount_sale(r):
    name, _, _ = r.choice(PEOPLE)
    item = r.choice(["jacket", "pair of shoes", "backpack", "lamp", "board game",
                     "helmet", "watch", "blender"])
    price = r.choice(range(20, 121, 4))
    d = r.choice([10, 20, 25, 30, 40, 50])
    n = r.randint(2, 4)
    discount = price * F(d, 100)
    sale = price - discount
    total = sale * n
    q = (f"A {item} normally costs {money(price)}. During a sale everything is {d}% off. "
         f"{name} buys {n} of them at the sale price. How many dollars does {name} pay "
         f"in total?")
    return q, total, dict(price=price, d=d, n=n)


def c_discount_sale(p):
    return F(p["n"] * p["price"] * (100 - p["d"]), 100)


def t_unit_rate_travel(r):
    name, she, _ = r.choice(PEOPLE)
    speed = r.choice(range(30, 71, 5))
    t1 = r.randint(2, 5)
    t2 = r.randint(2, 9)
    if t2 == t1:
        raise Retry
    d1 = speed * t1
    rate = F(d1, t1)
    d2 = rate * t2
    q = (f"{name} drives {d1} miles in {t1} hours. If {she} keeps driving at the same "
         f"speed, how many miles will {she} drive in {t2} hours?")
    return q, d2, dict(d1=d1, t1=t1, t2=t2)


def c_unit_rate_travel(p):
    return F(p["d1"] * p["t2"], p["t1"])


def t_factory_production(r):
    thing = r.choice(["toy cars", "bottles", "chairs", "loaves of bread", "bricks", "shirts"])
    rate = r.randint(12, 60)
    hours = r.randint(6, 10)
    reject = r.randint(3, 20)
    days = r.randint(3, 6)
    made = rate * hours
    good = made - reject
    total = good * days
    q = (f"A machine makes {rate} {thing} every hour and runs for {hours} hours each day. "
         f"Each day, {reject} of the {thing} it makes are faulty and thrown away. How many "
         f"good {thing} does the machine make in {days} days?")
    return q, F(total), dict(rate=rate, hours=hours, reject=reject, days=days)


def c_factory_production(p):
    return F(p["days"] * (p["rate"] * p["hours"] - p["reject"]))


def clock(minute_of_day):
    h, m = divmod(minute_of_day, 60)
    suffix = "AM" if h < 12 else "PM"
    h12 = h % 12 or 12
    return f"{h12}:{m:02d} {suffix}"


def parse_clock(s):
    hm, suffix = s.split()
    h, m = (int(v) for v in hm.split(":"))
    h = h % 12 + (12 if suffix == "PM" else 0)
    return 60 * h + m


def t_time_elapsed(r):
    name, she, _ = r.choice(PEOPLE)
    start = r.randrange(7 * 60, 15 * 60, 5)
    if r.random() < 0.5:
        # start and end times only: the minutes between them
        end = start + r.choice(range(35, 300, 5))
        q = (f"{name} starts working on a project at {clock(start)} and stops at "
             f"{clock(end)}. How many minutes did {she} work on the project?")
        return q, F(end - start), dict(q=q, parts=[])
    parts = [r.choice(range(15, 95, 5)) for _ in range(r.choice([2, 3]))]
    acts = r.sample(["does homework", "practices piano", "reads", "cleans the kitchen",
                     "goes for a run", "paints", "plays chess"], len(parts))
    busy = sum(parts)
    slack = r.choice(range(5, 65, 5))
    deadline = start + busy + slack
    listing = ", then ".join(f"{a} for {m} minutes" for a, m in zip(acts, parts))
    q = (f"{name} starts at {clock(start)} and must leave the house at {clock(deadline)}. "
         f"First {she} {listing}, with no breaks in between. How many minutes are left "
         f"before {she} must leave?")
    return q, F(deadline - start - busy), dict(q=q, parts=parts)


def c_time_elapsed(p):
    # read the two clock times back out of the question text
    import re
    times = re.findall(r"\d{1,2}:\d{2} [AP]M", p["q"])
    assert len(times) == 2, p
    return F(parse_clock(times[1]) - parse_clock(times[0]) - sum(p["parts"]))


def t_fraction_remaining(r):
    name, she, her = r.choice(PEOPLE)
    thing = r.choice(["marbles", "stickers", "cards", "stamps", "beads", "seashells"])
    a = r.choice([2, 3, 4, 5])
    b = r.choice([2, 3, 4, 5])
    base = a * b * r.randint(2, 8)
    given1 = base // a
    rest = base - given1
    if rest % b:
        raise Retry
    given2 = rest // b
    left = rest - given2
    q = (f"{name} has {base} {thing}. {she.capitalize()} gives 1/{a} of them to a friend, "
         f"and then gives 1/{b} of the {thing} {she} has left to {her} sister. How many "
         f"{thing} does {name} have now?")
    return q, F(left), dict(base=base, a=a, b=b)


def c_fraction_remaining(p):
    return p["base"] * (1 - F(1, p["a"])) * (1 - F(1, p["b"]))


def t_percent_raise_spend(r):
    name, she, her = r.choice(PEOPLE)
    salary = r.choice(range(1500, 4001, 100))
    raise_p = r.choice([2, 4, 5, 10, 15, 20])
    rent_p = r.choice([20, 25, 30, 40])
    new = salary + salary * F(raise_p, 100)
    rent = new * F(rent_p, 100)
    left = new - rent
    if not terminating2(left):
        raise Retry
    q = (f"{name} earns {money(salary)} a month. {she.capitalize()} gets a {raise_p}% raise. "
         f"After the raise, {she} spends {rent_p}% of {her} monthly pay on rent. How many "
         f"dollars of {her} monthly pay are left after rent?")
    return q, left, dict(salary=salary, raise_p=raise_p, rent_p=rent_p)


def c_percent_raise_spend(p):
    return F(p["salary"] * (100 + p["raise_p"]) * (100 - p["rent_p"]), 10000)


def t_average_needed(r):
    name, she, her = r.choice(PEOPLE)
    target = r.randint(75, 90)
    scores = [r.randint(65, 98) for _ in range(4)]
    need = 5 * target - sum(scores)
    if not (50 <= need <= 100):
        raise Retry
    q = (f"{name} scored {scores[0]}, {scores[1]}, {scores[2]} and {scores[3]} on {her} "
         f"first four tests. What score does {she} need on the fifth test to have an "
         f"average of exactly {target} over all five tests?")
    return q, F(need), dict(scores=scores, target=target)


def c_average_needed(p):
    # the score x with (sum + x) / 5 == target, found by search
    for x in range(0, 101):
        if F(sum(p["scores"]) + x, 5) == p["target"]:
            return F(x)
    raise AssertionError(p)


def t_savings_weeks(r):
    name, she, _ = r.choice(PEOPLE)
    item = r.choice(["bicycle", "tablet", "guitar", "telescope", "skateboard", "camera"])
    have = r.choice(range(10, 121, 5))
    per_week = r.choice(range(5, 41, 5))
    weeks = r.randint(3, 20)
    cost = have + per_week * weeks
    q = (f"{name} wants to buy a {item} that costs {money(cost)}. {she.capitalize()} has "
         f"already saved {money(have)} and saves {money(per_week)} more every week. How many "
         f"weeks will it take {name} to have exactly enough money?")
    return q, F(weeks), dict(cost=cost, have=have, per_week=per_week)


def c_savings_weeks(p):
    saved, w = p["have"], 0
    while saved < p["cost"]:
        saved += p["per_week"]
        w += 1
    assert saved == p["cost"]
    return F(w)


def t_recipe_scale(r):
    ingredient = r.choice(["cups of flour", "cups of milk", "tablespoons of butter",
                           "cups of sugar", "eggs"])
    a = r.randint(2, 6)
    b = r.choice([8, 10, 12, 16, 20, 24])
    c = r.choice([k for k in range(b // 2, 5 * b + 1, 2) if k != b])
    per = F(a, b)
    need = per * c
    if not terminating2(need):
        raise Retry
    if ingredient == "eggs" and need.denominator != 1:
        raise Retry
    q = (f"A recipe uses {a} {ingredient} to make {b} cookies. How many {ingredient} are "
         f"needed to make {c} cookies?")
    return q, need, dict(a=a, b=b, c=c)


def c_recipe_scale(p):
    return F(p["a"] * p["c"], p["b"])


def t_fence_cost(r):
    L = r.randint(5, 30)
    W = r.randint(3, 20)
    if W >= L:
        raise Retry
    cost = r.randint(3, 15)
    gate = r.choice(range(20, 151, 10))
    perimeter = 2 * L + 2 * W
    fence = perimeter * cost
    total = fence + gate
    q = (f"A rectangular garden is {L} meters long and {W} meters wide. Fencing costs "
         f"{money(cost)} per meter, and a gate costs an extra {money(gate)}. How many dollars "
         f"does it cost to fence all the way around the garden and add one gate?")
    return q, F(total), dict(L=L, W=W, cost=cost, gate=gate)


def c_fence_cost(p):
    return F(2 * (p["L"] + p["W"]) * p["cost"] + p["gate"])


def t_ribbon_pieces(r):
    name, she, _ = r.choice(PEOPLE)
    meters = r.randint(2, 12)
    piece = r.choice([15, 20, 25, 30, 35, 40, 45, 60, 70, 80])
    total_cm = meters * 100
    pieces = total_cm // piece
    q = (f"{name} has a ribbon that is {meters} meters long. {she.capitalize()} cuts it into "
         f"pieces that are each {piece} centimeters long. How many full pieces can {she} "
         f"cut? (1 meter = 100 centimeters)")
    return q, F(pieces), dict(meters=meters, piece=piece)


def c_ribbon_pieces(p):
    left, k = p["meters"] * 100, 0
    while left >= p["piece"]:
        left -= p["piece"]
        k += 1
    return F(k)


def t_split_bill(r):
    n = r.randint(2, 6)
    bill = r.choice(range(40, 241, 4))
    tip = r.choice([10, 15, 20, 25])
    tip_amt = bill * F(tip, 100)
    total = bill + tip_amt
    each = total / n
    if not terminating2(each):
        raise Retry
    q = (f"{n} friends eat dinner together. The bill is {money(bill)}, and they add a {tip}% "
         f"tip. They split the total, including the tip, equally. How many dollars does "
         f"each friend pay?")
    return q, each, dict(n=n, bill=bill, tip=tip)


def c_split_bill(p):
    return F(p["bill"] * (100 + p["tip"]), 100 * p["n"])


def t_two_leg_trip(r):
    name, she, _ = r.choice(PEOPLE)
    v1 = r.choice(range(40, 71, 5))
    v2 = r.choice(range(10, 31, 2))
    t1 = r.choice([1, 2, 3, F(3, 2), F(5, 2)])
    t2 = r.choice([1, 2, F(1, 2), F(3, 2)])
    leg1 = v1 * t1
    leg2 = v2 * t2
    total = leg1 + leg2
    q = (f"{name} drives for {hours(t1)} at {v1} miles per hour, then rides a bike for "
         f"{hours(t2)} at {v2} miles per hour. How many miles does {name} travel in "
         f"total?")
    return q, total, dict(v1=v1, t1=t1, v2=v2, t2=t2)


def c_two_leg_trip(p):
    return F(p["v1"]) * p["t1"] + F(p["v2"]) * p["t2"]


def t_inventory(r):
    store = r.choice(["bookstore", "bakery", "shoe store", "toy store", "garden center"])
    thing = {"bookstore": "books", "bakery": "pies", "shoe store": "pairs of boots",
             "toy store": "puzzles", "garden center": "plants"}[store]
    start = r.randint(80, 400)
    mon = r.randint(10, 60)
    tue = 2 * mon
    ship = r.randint(20, 150)
    after = start - mon - tue
    if after < 0:
        raise Retry
    now = after + ship
    q = (f"A {store} had {start} {thing}. It sold {mon} {thing} on Monday and twice as many "
         f"on Tuesday. On Wednesday a delivery of {ship} {thing} arrived. How many {thing} "
         f"does the {store} have now?")
    return q, F(now), dict(start=start, mon=mon, ship=ship)


def c_inventory(p):
    return F(p["start"] - 3 * p["mon"] + p["ship"])


def t_reading_compare(r):
    (n1, _, _), (n2, _, _) = r.sample(PEOPLE, 2)
    p = r.randint(15, 50)
    q_ = r.randint(5, p - 3)
    head = r.randint(10, 60)
    days = r.randint(3, 14)
    a_total = p * days
    b_total = head + q_ * days
    diff = a_total - b_total
    if diff <= 0:
        raise Retry
    q = (f"{n1} starts a new book today and reads {p} pages a day. {n2} has already read {head} "
         f"pages of the same book and, starting today, reads {q_} pages a day. After {days} "
         f"days, how many more pages of the book has {n1} read than {n2}?")
    return q, F(diff), dict(p=p, q=q_, head=head, days=days)


def c_reading_compare(p):
    return F((p["p"] - p["q"]) * p["days"] - p["head"])


def t_ratio_split(r):
    a = r.randint(1, 5)
    b = r.randint(1, 5)
    if a == b or math.gcd(a, b) != 1:
        raise Retry
    total = (a + b) * r.randint(3, 15)
    group = r.choice([("boys", "girls", "a school club"), ("red marbles", "blue marbles", "a bag"),
                      ("cats", "dogs", "an animal shelter"), ("adults", "children", "a park")])
    x, y, where = group
    part = F(total, a + b)
    ans = part * b
    q = (f"In {where}, the ratio of {x} to {y} is {a}:{b}. There are {total} {x} and {y} in "
         f"all. How many {y} are there?")
    return q, ans, dict(a=a, b=b, total=total)


def c_ratio_split(p):
    # search for the split that satisfies both conditions
    for y in range(p["total"] + 1):
        x = p["total"] - y
        if x * p["b"] == y * p["a"]:
            return F(y)
    raise AssertionError(p)


def t_overtime_pay(r):
    name, she, _ = r.choice(PEOPLE)
    wage = r.choice(range(12, 31, 2))
    hours = r.randint(41, 52)
    regular = 40 * wage
    over_rate = wage * F(3, 2)
    over = (hours - 40) * over_rate
    total = regular + over
    q = (f"{name} earns {money(wage)} an hour for the first 40 hours each week and 1.5 times "
         f"that rate for every hour over 40. This week {she} worked {hours} hours. How many "
         f"dollars did {name} earn this week?")
    return q, total, dict(wage=wage, hours=hours)


def c_overtime_pay(p):
    return sum((F(p["wage"]) if h <= 40 else F(p["wage"] * 3, 2)) for h in range(1, p["hours"] + 1))


def t_tickets_mix(r):
    place = r.choice(["museum", "zoo", "aquarium", "science center", "water park"])
    adult = r.choice(range(10, 31))
    child = r.choice(range(4, adult, 1))
    na = r.randint(1, 4)
    nc = r.randint(1, 5)
    parking = r.choice([5, 8, 10, 12, 15])
    cost_a = na * adult
    cost_c = nc * child
    total = cost_a + cost_c + parking
    q = (f"Tickets to the {place} cost {money(adult)} for each adult and {money(child)} for "
         f"each child. A family of {na} adult{'s' if na > 1 else ''} and {nc} "
         f"child{'ren' if nc > 1 else ''} visits and also pays {money(parking)} for "
         f"parking. How many dollars does the family spend in total?")
    return q, F(total), dict(adult=adult, child=child, na=na, nc=nc, parking=parking)


def c_tickets_mix(p):
    return F(p["na"] * p["adult"] + p["nc"] * p["child"] + p["parking"])


MATH_TEMPLATES = [
    ("shopping_change", t_shopping_change, c_shopping_change),
    ("discount_sale", t_discount_sale, c_discount_sale),
    ("unit_rate_travel", t_unit_rate_travel, c_unit_rate_travel),
    ("factory_production", t_factory_production, c_factory_production),
    ("time_elapsed", t_time_elapsed, c_time_elapsed),
    ("fraction_remaining", t_fraction_remaining, c_fraction_remaining),
    ("percent_raise_spend", t_percent_raise_spend, c_percent_raise_spend),
    ("average_needed", t_average_needed, c_average_needed),
    ("savings_weeks", t_savings_weeks, c_savings_weeks),
    ("recipe_scale", t_recipe_scale, c_recipe_scale),
    ("fence_cost", t_fence_cost, c_fence_cost),
    ("ribbon_pieces", t_ribbon_pieces, c_ribbon_pieces),
    ("split_bill", t_split_bill, c_split_bill),
    ("two_leg_trip", t_two_leg_trip, c_two_leg_trip),
    ("inventory", t_inventory, c_inventory),
    ("reading_compare", t_reading_compare, c_reading_compare),
    ("ratio_split", t_ratio_split, c_ratio_split),
    ("overtime_pay", t_overtime_pay, c_overtime_pay),
    ("tickets_mix", t_tickets_mix, c_tickets_mix),
]


def make_math():
    r = random.Random(SEED)
    per_template = {}
    seen = set()
    for name, gen, check in MATH_TEMPLATES:
        out = []
        tries = 0
        while len(out) < MATH_PER_TEMPLATE:
            tries += 1
            assert tries < 10000, f"template {name} cannot produce enough items"
            try:
                q, ans, params = gen(r)
            except Retry:
                continue
            if q in seen:
                continue
            ans = F(ans)
            assert ans > 0, (name, q, ans)
            assert check(params) == ans, (name, q, ans, check(params))
            target = fmt(ans)
            assert F(target) == ans, (name, target, ans)
            seen.add(q)
            out.append((q, target))
        per_template[name] = out
    # interleave templates so that any prefix (`--limit N`) mixes them
    items = []
    for k in range(MATH_PER_TEMPLATE):
        for name, _, _ in MATH_TEMPLATES:
            q, target = per_template[name][k]
            items.append({"input": q, "target": target, "cluster": name})
    for i, it in enumerate(items, 1):
        it["id"] = f"math/{i:04d}"
    return [{"id": it["id"], "input": it["input"], "target": it["target"],
             "cluster": it["cluster"]} for it in items]


MATH_TOML = '''\
# Generated by suites/make_math_qa.py; edit the script, not this file.
name = "math"
capability = "math"
version = "1"
scorer = "generate_number"
metric = "exact_match"
items = "items.jsonl"

[prompt]
template = """Solve the following math word problem. Reason briefly, step by step, then finish with a final line of the form "Answer: <number>" giving only the number (no units).

Problem: {{ input }}
"""
chat = "auto"
fewshot = 0
fewshot_seed = 0

[generation]
max_new_tokens = 256
stop = []
answer_regex = "Answer:\\\\s*\\\\**\\\\s*\\\\$?(-?[0-9][0-9,]*\\\\.?[0-9]*)"
'''

# --------------------------------------------------------------------------------------
# QA: (topic, question, correct, [three distractors]); written for this project
# --------------------------------------------------------------------------------------

QA = [
    # science
    ("science", "What gas do plants take in from the air to carry out photosynthesis?", "Carbon dioxide", ["Oxygen", "Nitrogen", "Helium"]),
    ("science", "What is the chemical symbol for gold?", "Au", ["Ag", "Gd", "Go"]),
    ("science", "How many planets are in the Solar System?", "Eight", ["Seven", "Nine", "Ten"]),
    ("science", "Which planet is known as the Red Planet?", "Mars", ["Venus", "Jupiter", "Mercury"]),
    ("science", "At sea level, water boils at how many degrees Celsius?", "100", ["90", "120", "212"]),
    ("science", "Which organ pumps blood through the human body?", "The heart", ["The liver", "The lungs", "The kidneys"]),
    ("science", "What is the largest planet in the Solar System?", "Jupiter", ["Saturn", "Neptune", "Earth"]),
    ("science", "What is the common name for the compound H2O?", "Water", ["Hydrogen peroxide", "Table salt", "Ammonia"]),
    ("science", "Which force keeps the planets in orbit around the Sun?", "Gravity", ["Magnetism", "Friction", "Static electricity"]),
    ("science", "What is the hardest natural substance?", "Diamond", ["Quartz", "Granite", "Iron"]),
    ("science", "How many bones are in the body of a typical adult human?", "206", ["186", "226", "250"]),
    ("science", "Which gas makes up most of Earth's atmosphere?", "Nitrogen", ["Oxygen", "Carbon dioxide", "Argon"]),
    ("science", "What is the dense center of an atom called?", "The nucleus", ["The electron", "The shell", "The molecule"]),
    ("science", "What kind of animal is a whale?", "A mammal", ["A fish", "A reptile", "An amphibian"]),
    ("science", "Water freezes at how many degrees Fahrenheit?", "32", ["0", "100", "212"]),
    ("science", "Which planet is closest to the Sun?", "Mercury", ["Venus", "Earth", "Mars"]),
    ("science", "What do bees collect from flowers and turn into honey?", "Nectar", ["Sap", "Dew", "Resin"]),
    ("science", "Which vitamin does human skin make when it is exposed to sunlight?", "Vitamin D", ["Vitamin C", "Vitamin A", "Vitamin K"]),
    ("science", "What is the chemical symbol for sodium?", "Na", ["So", "Sd", "S"]),
    ("science", "What is the process in which water vapor cools and turns into liquid water?", "Condensation", ["Evaporation", "Sublimation", "Melting"]),
    ("science", "Which blood cells carry oxygen around the body?", "Red blood cells", ["White blood cells", "Platelets", "Nerve cells"]),
    ("science", "Which gas do plants release as a product of photosynthesis?", "Oxygen", ["Carbon dioxide", "Nitrogen", "Methane"]),
    ("science", "How many legs does an insect have?", "Six", ["Eight", "Four", "Ten"]),
    ("science", "What kind of energy does an object have because it is moving?", "Kinetic energy", ["Potential energy", "Nuclear energy", "Chemical energy"]),
    ("science", "Which chemical element has atomic number 1?", "Hydrogen", ["Helium", "Oxygen", "Carbon"]),
    ("science", "What is the largest organ of the human body?", "The skin", ["The liver", "The brain", "The lungs"]),
    ("science", "Which scientist developed the theory of general relativity?", "Albert Einstein", ["Isaac Newton", "Galileo Galilei", "Niels Bohr"]),
    ("science", "What is the pH of pure water at room temperature?", "7", ["0", "14", "1"]),
    ("science", "In which layer of Earth's atmosphere is most of the ozone layer found?", "The stratosphere", ["The troposphere", "The mesosphere", "The thermosphere"]),
    ("science", "What is the SI unit of electrical resistance?", "The ohm", ["The volt", "The ampere", "The watt"]),
    ("science", "Which part of a plant takes up water from the soil?", "The roots", ["The leaves", "The flowers", "The petals"]),
    ("science", "What is the star closest to Earth?", "The Sun", ["Proxima Centauri", "Sirius", "Polaris"]),
    ("science", "What is the chemical formula of table salt?", "NaCl", ["KCl", "NaOH", "CaCO3"]),
    ("science", "What is the SI unit of force?", "The newton", ["The joule", "The pascal", "The watt"]),
    ("science", "What do we call an animal that eats only plants?", "A herbivore", ["A carnivore", "A predator", "A scavenger"]),
    ("science", "Which organ of the human body is mainly responsible for filtering blood to make urine?", "The kidneys", ["The heart", "The stomach", "The lungs"]),
    ("science", "Sound cannot travel through which of these?", "A vacuum", ["Water", "Steel", "Air"]),
    ("science", "What is the name of the galaxy that contains our Solar System?", "The Milky Way", ["Andromeda", "The Large Magellanic Cloud", "Triangulum"]),
    # geography
    ("geography", "What is the capital of France?", "Paris", ["Lyon", "Marseille", "Nice"]),
    ("geography", "What is the capital of Japan?", "Tokyo", ["Osaka", "Kyoto", "Hiroshima"]),
    ("geography", "What is the capital of Australia?", "Canberra", ["Sydney", "Melbourne", "Perth"]),
    ("geography", "What is the capital of Canada?", "Ottawa", ["Toronto", "Vancouver", "Montreal"]),
    ("geography", "Which is the largest ocean on Earth?", "The Pacific Ocean", ["The Atlantic Ocean", "The Indian Ocean", "The Arctic Ocean"]),
    ("geography", "On which continent is Egypt mainly located?", "Africa", ["Asia", "Europe", "South America"]),
    ("geography", "Which mountain has the highest peak above sea level?", "Mount Everest", ["K2", "Kilimanjaro", "Mont Blanc"]),
    ("geography", "Which country has the largest land area?", "Russia", ["Canada", "China", "The United States"]),
    ("geography", "What is the capital of Italy?", "Rome", ["Milan", "Venice", "Naples"]),
    ("geography", "Which river flows through Cairo?", "The Nile", ["The Congo", "The Niger", "The Zambezi"]),
    ("geography", "What is the capital of Germany?", "Berlin", ["Munich", "Hamburg", "Frankfurt"]),
    ("geography", "In which country is the city of Rio de Janeiro?", "Brazil", ["Argentina", "Portugal", "Mexico"]),
    ("geography", "What is the capital of Spain?", "Madrid", ["Barcelona", "Seville", "Valencia"]),
    ("geography", "Which continent is the coldest?", "Antarctica", ["Europe", "Asia", "North America"]),
    ("geography", "What is the capital of Kenya?", "Nairobi", ["Mombasa", "Kampala", "Addis Ababa"]),
    ("geography", "Which European country is famous for its boot-shaped outline on the map?", "Italy", ["Greece", "Portugal", "Croatia"]),
    ("geography", "What is the capital of Egypt?", "Cairo", ["Alexandria", "Luxor", "Giza"]),
    ("geography", "Which US state is made up entirely of islands in the Pacific Ocean?", "Hawaii", ["Alaska", "California", "Florida"]),
    ("geography", "What is the capital of Russia?", "Moscow", ["Saint Petersburg", "Kazan", "Novosibirsk"]),
    ("geography", "On which continent is the Sahara Desert?", "Africa", ["Asia", "Australia", "South America"]),
    ("geography", "What is the capital of the United Kingdom?", "London", ["Manchester", "Edinburgh", "Birmingham"]),
    ("geography", "In which country are the Great Pyramids of Giza?", "Egypt", ["Mexico", "Peru", "Greece"]),
    ("geography", "What is the capital of China?", "Beijing", ["Shanghai", "Hong Kong", "Guangzhou"]),
    ("geography", "Which mountain range is traditionally taken as part of the boundary between Europe and Asia?", "The Ural Mountains", ["The Alps", "The Andes", "The Rocky Mountains"]),
    ("geography", "What is the capital of India?", "New Delhi", ["Mumbai", "Kolkata", "Bangalore"]),
    ("geography", "Which ocean lies between Africa and Australia?", "The Indian Ocean", ["The Atlantic Ocean", "The Pacific Ocean", "The Arctic Ocean"]),
    ("geography", "What is the capital of Mexico?", "Mexico City", ["Guadalajara", "Cancun", "Monterrey"]),
    ("geography", "In which country is the city of Toronto?", "Canada", ["The United States", "Australia", "The United Kingdom"]),
    ("geography", "What is the capital of Argentina?", "Buenos Aires", ["Santiago", "Lima", "Montevideo"]),
    ("geography", "What is the largest country in South America by area?", "Brazil", ["Argentina", "Peru", "Colombia"]),
    ("geography", "Which strait separates Spain from Morocco?", "The Strait of Gibraltar", ["The Bering Strait", "The Strait of Hormuz", "The Strait of Malacca"]),
    ("geography", "What is the capital of South Korea?", "Seoul", ["Busan", "Pyongyang", "Incheon"]),
    ("geography", "In which city is the Statue of Liberty?", "New York City", ["Boston", "Washington, D.C.", "Philadelphia"]),
    ("geography", "What is the capital of Greece?", "Athens", ["Sparta", "Thessaloniki", "Corinth"]),
    ("geography", "In which country is most of the Amazon rainforest?", "Brazil", ["Peru", "Colombia", "Venezuela"]),
    ("geography", "What is the capital of Turkey?", "Ankara", ["Istanbul", "Izmir", "Antalya"]),
    ("geography", "Which is the longest river in Europe?", "The Volga", ["The Danube", "The Rhine", "The Thames"]),
    ("geography", "What is the capital of Norway?", "Oslo", ["Bergen", "Stockholm", "Helsinki"]),
    # history
    ("history", "Who was the first President of the United States?", "George Washington", ["Thomas Jefferson", "Abraham Lincoln", "John Adams"]),
    ("history", "In which year did World War II end?", "1945", ["1939", "1918", "1950"]),
    ("history", "In which year did World War I begin?", "1914", ["1918", "1905", "1939"]),
    ("history", "Who was the first person to walk on the Moon?", "Neil Armstrong", ["Buzz Aldrin", "Yuri Gagarin", "John Glenn"]),
    ("history", "In which year did astronauts first land on the Moon?", "1969", ["1959", "1975", "1981"]),
    ("history", "Which ancient people built the Great Pyramids of Giza?", "The ancient Egyptians", ["The ancient Greeks", "The Romans", "The Aztecs"]),
    ("history", "Who was the principal author of the United States Declaration of Independence?", "Thomas Jefferson", ["George Washington", "Benjamin Franklin", "Alexander Hamilton"]),
    ("history", "In which year did Christopher Columbus first reach the Americas?", "1492", ["1607", "1388", "1521"]),
    ("history", "Who was the first human to travel into outer space?", "Yuri Gagarin", ["Neil Armstrong", "Alan Shepard", "John Glenn"]),
    ("history", "In which year did the Berlin Wall fall?", "1989", ["1961", "1991", "1975"]),
    ("history", "Julius Caesar was a leader of which ancient state?", "Rome", ["Athens", "Egypt", "Persia"]),
    ("history", "Who was the British Prime Minister for most of World War II?", "Winston Churchill", ["Neville Chamberlain", "Clement Attlee", "Margaret Thatcher"]),
    ("history", "Who painted the Mona Lisa?", "Leonardo da Vinci", ["Michelangelo", "Raphael", "Vincent van Gogh"]),
    ("history", "In which year did the Titanic sink?", "1912", ["1905", "1921", "1898"]),
    ("history", "Which country gave the Statue of Liberty to the United States?", "France", ["England", "Spain", "Italy"]),
    ("history", "Who was the first woman to win a Nobel Prize?", "Marie Curie", ["Florence Nightingale", "Rosalind Franklin", "Ada Lovelace"]),
    ("history", "Which US President issued the Emancipation Proclamation?", "Abraham Lincoln", ["George Washington", "Ulysses S. Grant", "Andrew Jackson"]),
    ("history", "Who is best known for leading India's nonviolent campaign for independence from British rule?", "Mahatma Gandhi", ["Nelson Mandela", "Martin Luther King Jr.", "Ho Chi Minh"]),
    ("history", "Who was the first emperor of Rome?", "Augustus", ["Julius Caesar", "Nero", "Caligula"]),
    ("history", "In which year did the French Revolution begin?", "1789", ["1776", "1815", "1848"]),
    ("history", "In which year did the United States declare its independence?", "1776", ["1789", "1812", "1865"]),
    ("history", "Who received the first US patent for the telephone?", "Alexander Graham Bell", ["Thomas Edison", "Nikola Tesla", "Samuel Morse"]),
    ("history", "Which long wall was built across northern China to keep out invaders?", "The Great Wall", ["Hadrian's Wall", "The Berlin Wall", "The Western Wall"]),
    ("history", "Who became South Africa's first Black president in 1994 after 27 years in prison?", "Nelson Mandela", ["Desmond Tutu", "Thabo Mbeki", "Jacob Zuma"]),
    ("history", "Who discovered penicillin in 1928?", "Alexander Fleming", ["Louis Pasteur", "Joseph Lister", "Edward Jenner"]),
    ("history", "Which ship carried the Pilgrims to North America in 1620?", "The Mayflower", ["The Santa Maria", "The Endeavour", "The Beagle"]),
    ("history", "In which country did the Renaissance begin?", "Italy", ["France", "England", "Spain"]),
    ("history", "Who was the first woman to serve as Prime Minister of the United Kingdom?", "Margaret Thatcher", ["Theresa May", "Queen Victoria", "Indira Gandhi"]),
    ("history", "Which civilization built Machu Picchu?", "The Inca", ["The Maya", "The Aztecs", "The Olmec"]),
    ("history", "Who introduced printing with movable metal type in Europe around 1440?", "Johannes Gutenberg", ["Martin Luther", "William Caxton", "Leonardo da Vinci"]),
    ("history", "Which war was fought between the northern and southern states of the United States from 1861 to 1865?", "The American Civil War", ["The Revolutionary War", "The War of 1812", "The Spanish-American War"]),
    ("history", "In which city was President John F. Kennedy assassinated?", "Dallas", ["Washington, D.C.", "Houston", "Chicago"]),
    ("history", "Which Greek philosopher was the tutor of Alexander the Great?", "Aristotle", ["Plato", "Socrates", "Pythagoras"]),
    ("history", "The Cold War was mainly a rivalry between the United States and which country?", "The Soviet Union", ["China", "Germany", "Japan"]),
    ("history", "Whose expedition was the first to sail all the way around the world?", "Ferdinand Magellan's", ["Christopher Columbus's", "Vasco da Gama's", "James Cook's"]),
    ("history", "In which year did the Soviet Union dissolve?", "1991", ["1989", "1985", "1999"]),
    ("history", "Which queen ruled England from 1558 to 1603?", "Elizabeth I", ["Victoria", "Mary I", "Anne"]),
    # language
    ("language", "What is the plural of \"mouse\" when it means the animal?", "mice", ["mouses", "meese", "mousen"]),
    ("language", "Which word means the opposite of \"ancient\"?", "modern", ["old", "broken", "large"]),
    ("language", "Which word means nearly the same as \"happy\"?", "joyful", ["angry", "tired", "hungry"]),
    ("language", "What is the past tense of \"run\"?", "ran", ["runned", "running", "runs"]),
    ("language", "In the sentence \"The dog barked loudly\", which word is a noun?", "dog", ["barked", "loudly", "the"]),
    ("language", "What is the simple past tense of \"go\"?", "went", ["goed", "gone", "going"]),
    ("language", "What is the plural of \"child\"?", "children", ["childs", "childes", "childrens"]),
    ("language", "Which word means the opposite of \"generous\"?", "stingy", ["kind", "wealthy", "friendly"]),
    ("language", "Which word means the same as \"big\"?", "large", ["tiny", "narrow", "quick"]),
    ("language", "How many letters are in the modern English alphabet?", "26", ["24", "28", "25"]),
    ("language", "What is the main language spoken in Brazil?", "Portuguese", ["Spanish", "French", "Italian"]),
    ("language", "What does the prefix \"un-\" usually mean, as in \"unhappy\"?", "not", ["again", "before", "very"]),
    ("language", "What does the prefix \"re-\" mean in the word \"rewrite\"?", "again", ["not", "before", "against"]),
    ("language", "Which punctuation mark ends a direct question in English?", "A question mark", ["A comma", "A colon", "A semicolon"]),
    ("language", "What is the comparative form of \"good\"?", "better", ["gooder", "best", "more good"]),
    ("language", "Which of these words is a verb?", "jump", ["table", "blue", "quickly"]),
    ("language", "Which of these words is an adjective?", "beautiful", ["beauty", "beautify", "beautifully"]),
    ("language", "What is the plural of \"tooth\"?", "teeth", ["tooths", "teeths", "toothes"]),
    ("language", "Which of these words is spelled correctly?", "necessary", ["neccessary", "necesary", "neccesary"]),
    ("language", "Which word means the opposite of \"arrive\"?", "depart", ["reach", "enter", "land"]),
    ("language", "What is a group of words that expresses a complete thought called?", "A sentence", ["A syllable", "A prefix", "A vowel"]),
    ("language", "What is the official language of Argentina?", "Spanish", ["Portuguese", "English", "Italian"]),
    ("language", "Which word rhymes with \"cat\"?", "hat", ["cut", "cot", "cart"]),
    ("language", "What is the superlative form of \"bad\"?", "worst", ["baddest", "worse", "most bad"]),
    ("language", "What do we call a person who writes books?", "An author", ["An editor", "A reader", "A printer"]),
    ("language", "What does the French word \"bonjour\" mean?", "hello", ["goodbye", "thank you", "please"]),
    ("language", "What does the Spanish word \"gracias\" mean?", "thank you", ["hello", "please", "sorry"]),
    ("language", "Which of these letters is a vowel in English?", "E", ["B", "T", "K"]),
    ("language", "What is the simple past tense of \"eat\"?", "ate", ["eated", "eaten", "eats"]),
    ("language", "What is a word that sounds the same as another word but has a different meaning and spelling called?", "A homophone", ["An antonym", "A synonym", "An acronym"]),
    ("language", "Which word means the opposite of \"brave\"?", "cowardly", ["bold", "strong", "loud"]),
    ("language", "What is the plural of \"goose\"?", "geese", ["gooses", "geeses", "goosen"]),
    ("language", "What does the German phrase \"auf Wiedersehen\" mean?", "goodbye", ["good morning", "thank you", "excuse me"]),
    ("language", "What is the simple past tense of \"swim\"?", "swam", ["swimmed", "swum", "swimming"]),
    ("language", "What is a word with the opposite meaning of another word called?", "An antonym", ["A synonym", "A homophone", "A pronoun"]),
    ("language", "Which word is a pronoun?", "she", ["run", "green", "under"]),
    ("language", "What is the main language spoken in Mexico?", "Spanish", ["Portuguese", "English", "French"]),
    ("language", "Which word means the opposite of \"empty\"?", "full", ["hollow", "clear", "open"]),
    # arithmetic
    ("arithmetic", "What is 7 times 8?", "56", ["54", "48", "64"]),
    ("arithmetic", "What is 144 divided by 12?", "12", ["11", "14", "13"]),
    ("arithmetic", "What is the square root of 81?", "9", ["8", "7", "6"]),
    ("arithmetic", "What is 15 plus 27?", "42", ["32", "43", "52"]),
    ("arithmetic", "What is 100 minus 37?", "63", ["73", "67", "53"]),
    ("arithmetic", "How many sides does a hexagon have?", "Six", ["Five", "Seven", "Eight"]),
    ("arithmetic", "What is 25 percent of 200?", "50", ["25", "40", "75"]),
    ("arithmetic", "What is 9 squared?", "81", ["18", "72", "99"]),
    ("arithmetic", "What is the smallest prime number greater than 7?", "11", ["9", "13", "10"]),
    ("arithmetic", "How many degrees are in a right angle?", "90", ["180", "45", "360"]),
    ("arithmetic", "The three angles of a triangle add up to how many degrees?", "180", ["90", "360", "270"]),
    ("arithmetic", "What is half of 250?", "125", ["150", "115", "100"]),
    ("arithmetic", "What is 12 times 12?", "144", ["124", "132", "156"]),
    ("arithmetic", "How many minutes are in one hour?", "60", ["100", "30", "24"]),
    ("arithmetic", "How many seconds are in one hour?", "3600", ["360", "6000", "600"]),
    ("arithmetic", "What is 3/4 written as a decimal?", "0.75", ["0.34", "0.25", "0.7"]),
    ("arithmetic", "What is 0.5 written as a fraction in lowest terms?", "1/2", ["1/5", "5/1", "1/4"]),
    ("arithmetic", "How many centimeters are in one meter?", "100", ["10", "1000", "12"]),
    ("arithmetic", "How many grams are in one kilogram?", "1000", ["100", "10", "10000"]),
    ("arithmetic", "What is 2 to the power of 5?", "32", ["10", "25", "64"]),
    ("arithmetic", "What is the smallest prime number?", "2", ["1", "3", "0"]),
    ("arithmetic", "What is 1000 divided by 8?", "125", ["120", "150", "80"]),
    ("arithmetic", "What is the value of pi rounded to two decimal places?", "3.14", ["3.41", "3.16", "2.14"]),
    ("arithmetic", "How many sides does a pentagon have?", "Five", ["Six", "Four", "Eight"]),
    ("arithmetic", "What is 11 times 11?", "121", ["111", "122", "112"]),
    ("arithmetic", "What is 20 percent of 80?", "16", ["20", "8", "40"]),
    ("arithmetic", "What is the perimeter of a square whose sides are 5 centimeters long?", "20 centimeters", ["25 centimeters", "10 centimeters", "15 centimeters"]),
    ("arithmetic", "What is the area of a rectangle that is 4 meters long and 6 meters wide?", "24 square meters", ["20 square meters", "10 square meters", "48 square meters"]),
    ("arithmetic", "How many days are in a leap year?", "366", ["365", "364", "360"]),
    ("arithmetic", "What is 1/2 plus 1/4?", "3/4", ["2/6", "1/6", "2/4"]),
    ("arithmetic", "What is -3 plus 5?", "2", ["-8", "8", "-2"]),
    ("arithmetic", "What is 5 cubed?", "125", ["15", "25", "75"]),
    ("arithmetic", "How many zeros are in one million written as a number?", "Six", ["Five", "Seven", "Nine"]),
    ("arithmetic", "What number does the Roman numeral X stand for?", "10", ["5", "50", "100"]),
    ("arithmetic", "What number does the Roman numeral L stand for?", "50", ["100", "500", "10"]),
    ("arithmetic", "What is 45 divided by 9?", "5", ["6", "4", "9"]),
    ("arithmetic", "How many edges does a cube have?", "12", ["6", "8", "10"]),
    ("arithmetic", "What is 6 times 7?", "42", ["36", "48", "49"]),
    # everyday
    ("everyday", "How many days are in a week?", "Seven", ["Five", "Six", "Eight"]),
    ("everyday", "How many months of the year have 31 days?", "Seven", ["Six", "Five", "Eight"]),
    ("everyday", "Which month comes right after April?", "May", ["March", "June", "July"]),
    ("everyday", "What color do you get by mixing blue and yellow paint?", "Green", ["Purple", "Orange", "Brown"]),
    ("everyday", "What color do you get by mixing red and white paint?", "Pink", ["Purple", "Orange", "Gray"]),
    ("everyday", "How many hours are in one day?", "24", ["12", "48", "20"]),
    ("everyday", "What is the main ingredient of guacamole?", "Avocado", ["Tomato", "Cucumber", "Peas"]),
    ("everyday", "How many players does one soccer team have on the field during play?", "Eleven", ["Nine", "Ten", "Twelve"]),
    ("everyday", "Which animal is often called the \"king of the jungle\"?", "The lion", ["The tiger", "The elephant", "The gorilla"]),
    ("everyday", "What is frozen water called?", "Ice", ["Steam", "Fog", "Dew"]),
    ("everyday", "How many cards are in a standard deck of playing cards, not counting jokers?", "52", ["48", "54", "50"]),
    ("everyday", "What is the main ingredient of ordinary wheat bread?", "Flour", ["Rice", "Sugar", "Butter"]),
    ("everyday", "Which season comes right after winter?", "Spring", ["Summer", "Autumn", "Monsoon"]),
    ("everyday", "How many sides does a standard octagonal stop sign have?", "Eight", ["Six", "Five", "Four"]),
    ("everyday", "What color is the peel of a ripe banana?", "Yellow", ["Red", "Blue", "Purple"]),
    ("everyday", "Which instrument has 88 keys on a standard full-size model?", "The piano", ["The guitar", "The violin", "The trumpet"]),
    ("everyday", "How many strings does a standard violin have?", "Four", ["Six", "Five", "Three"]),
    ("everyday", "How many players does one basketball team have on the court during play?", "Five", ["Six", "Seven", "Four"]),
    ("everyday", "What is a period of 100 years called?", "A century", ["A decade", "A millennium", "A generation"]),
    ("everyday", "How many years are in a decade?", "Ten", ["Five", "Twenty", "One hundred"]),
    ("everyday", "How many wheels does a tricycle have?", "Three", ["Two", "Four", "Five"]),
    ("everyday", "What is the first meal of the day usually called?", "Breakfast", ["Lunch", "Dinner", "Supper"]),
    ("everyday", "Which instrument is used to measure temperature?", "A thermometer", ["A barometer", "A ruler", "A compass"]),
    ("everyday", "Which farm animal is raised for its wool?", "The sheep", ["The cow", "The pig", "The chicken"]),
    ("everyday", "What is the largest living land animal?", "The African elephant", ["The giraffe", "The hippopotamus", "The rhinoceros"]),
    ("everyday", "What is the tallest living animal?", "The giraffe", ["The elephant", "The camel", "The ostrich"]),
    ("everyday", "In which sport do players hit a shuttlecock over a net?", "Badminton", ["Tennis", "Squash", "Table tennis"]),
    ("everyday", "How many rings are on the Olympic flag?", "Five", ["Four", "Six", "Seven"]),
    ("everyday", "Besides fish, what is the main ingredient of sushi?", "Rice", ["Noodles", "Bread", "Potatoes"]),
    ("everyday", "In which direction does the Sun rise?", "The east", ["The west", "The north", "The south"]),
    ("everyday", "About how many weeks are in one year?", "52", ["48", "40", "60"]),
    ("everyday", "Which kitchen appliance keeps food cold?", "A refrigerator", ["An oven", "A toaster", "A kettle"]),
    ("everyday", "Which animal is known for its black and white stripes?", "The zebra", ["The leopard", "The giraffe", "The cheetah"]),
    ("everyday", "How many hours are in two days?", "48", ["24", "36", "72"]),
    ("everyday", "Which US coin is worth one cent?", "The penny", ["The nickel", "The dime", "The quarter"]),
    ("everyday", "What do you call a baby dog?", "A puppy", ["A kitten", "A calf", "A foal"]),
    ("everyday", "How many minutes are in a quarter of an hour?", "15", ["25", "10", "20"]),
    ("everyday", "What is the last month of the year?", "December", ["November", "January", "October"]),
]

QA_TOPICS = ["science", "geography", "history", "language", "arithmetic", "everyday"]

QA_TOML = '''\
# Generated by suites/make_math_qa.py; edit the script, not this file.
name = "qa"
capability = "qa"
version = "1"
scorer = "mc_loglik"
metric = "acc"
items = "items.jsonl"

[prompt]
template = "Question: {{ input }}\\nAnswer:"
choice_template = " {{ choice }}"
chat = "never"
fewshot = 0
fewshot_seed = 0
'''


def make_qa():
    r = random.Random(SEED + 1)
    # sanity of the table
    questions = [q for _, q, _, _ in QA]
    assert len(set(questions)) == len(questions), "duplicate QA question"
    for topic, q, correct, wrong in QA:
        assert topic in QA_TOPICS, topic
        assert len(wrong) == 3, q
        opts = [correct] + wrong
        assert len(set(o.lower() for o in opts)) == 4, f"duplicate choices: {q}"
        assert all(o.strip() == o and o for o in opts), q
    # interleave topics (so `--limit N` mixes them), keeping table order within a topic
    by_topic = {t: [row for row in QA if row[0] == t] for t in QA_TOPICS}
    ordered = []
    k = 0
    while any(k < len(v) for v in by_topic.values()):
        for t in QA_TOPICS:
            if k < len(by_topic[t]):
                ordered.append(by_topic[t][k])
        k += 1
    n = len(ordered)
    # balanced gold positions: an even split over 0..3, shuffled
    golds = [i % 4 for i in range(n)]
    r.shuffle(golds)
    items = []
    for i, ((topic, q, correct, wrong), g) in enumerate(zip(ordered, golds), 1):
        distractors = list(wrong)
        r.shuffle(distractors)
        choices = distractors[:g] + [correct] + distractors[g:]
        assert choices[g] == correct and len(choices) == 4
        items.append({"id": f"qa/{i:04d}", "input": q, "choices": choices, "gold": g,
                      "cluster": topic})
    return items


# --------------------------------------------------------------------------------------
# writing and validation
# --------------------------------------------------------------------------------------

ALLOWED = {"id", "input", "context", "choices", "gold", "golds", "target", "test",
           "entry_point", "label", "cluster"}


def write_suite(name, toml_text, items):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "suite.toml"), "w", encoding="utf-8", newline="\n") as f:
        f.write(toml_text)
    path = os.path.join(d, "items.jsonl")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    # read back: every line parses, fields known, ids unique
    ids = set()
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == len(items)
    for line, orig in zip(lines, items):
        obj = json.loads(line)
        assert obj == orig
        assert set(obj) <= ALLOWED, set(obj) - ALLOWED
        assert obj["id"] not in ids, obj["id"]
        ids.add(obj["id"])
    return path


def main():
    math_items = make_math()
    qa_items = make_qa()
    assert len(math_items) >= 200 and len(qa_items) >= 200
    assert len(MATH_TEMPLATES) >= 12
    for it in math_items:
        float(it["target"])  # a plain number
        assert "," not in it["target"] and "$" not in it["target"]
    write_suite("math", MATH_TOML, math_items)
    write_suite("qa", QA_TOML, qa_items)
    mc = Counter(it["cluster"] for it in math_items)
    qc = Counter(it["cluster"] for it in qa_items)
    gc = Counter(it["gold"] for it in qa_items)
    print(f"math: {len(math_items)} items, {len(mc)} templates")
    for k in (t for t, _, _ in MATH_TEMPLATES):
        print(f"  {k:22s} {mc[k]}")
    print(f"qa: {len(qa_items)} items; gold positions "
          + ", ".join(f"{'ABCD'[g]}={gc[g]}" for g in range(4)))
    for k in QA_TOPICS:
        print(f"  {k:22s} {qc[k]}")


if __name__ == "__main__":
    main()
