#!/usr/bin/env python3
"""Writes the example data under examples/data/ (deterministic: same output every run).

About the seed's scale: ~150 personal and ~120 business contacts with overlaps, and the
other four types likewise, including items the default policies withhold (personal/family
categories, confidential documents) or redact (notes, birthdays, private events, message
bodies). Run it again after changing it; the output is committed.
"""
import json, random, os
from datetime import datetime, timedelta, timezone

R = random.Random(20260112)
HERE = os.path.dirname(os.path.abspath(__file__))
FIRST = "Ada Alan Grace Linus Barbara Ken Dennis Margaret Edsger Donald Frances John Radia Tim Vint Hedy Katherine Guido Bjarne Anders Yukihiro Rich Sophie Niklaus Leslie Shafi Silvio Judea Fei-Fei Yann Geoffrey Joy Andrew Daphne".split()
LAST = "Lovelace Turing Hopper Torvalds Liskov Thompson Ritchie Hamilton Dijkstra Knuth Allen McCarthy Perlman Berners-Lee Cerf Lamarr Johnson Rossum Stroustrup Hejlsberg Matsumoto Hickey Wilson Wirth Lamport Goldwasser Micali Pearl Li LeCun Hinton Buolamwini Ng Koller".split()
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella Labs", "Stark Industries", "Wayne Enterprises", "Hooli"]
BASE = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)

def ts(days=0, hours=0, minutes=0, tz=None):
    t = BASE + timedelta(days=days, hours=hours, minutes=minutes)
    if tz:  # some sources write local offsets; the plugins normalise to UTC
        return t.astimezone(timezone(timedelta(hours=tz))).isoformat()
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")

def person(i):
    f, l = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
    return f, l, f"{f.lower()}.{l.lower()}{i}@example.com"

def contacts():
    personal, business = [], []
    # 0-59: shared (business contacts known in both), 60-149 personal only, 150-209 business only
    for i in range(210):
        f, l, email = person(i)
        c = {"id": f"contact-{i:03d}", "name": f"{f} {l}", "email": email,
             "phone": f"+1-555-{1000 + i:04d}", "lastModified": ts(days=i % 30, hours=i % 8)}
        if i < 60:
            c.update(category="business", company=COMPANIES[i % len(COMPANIES)], title="Engineer")
            p = dict(c)
            if i % 5 == 0:
                p["notes"] = "Met at the conference; likes chess"   # stripped on the way to business
            if i % 6 == 0:
                p["birthday"] = f"19{70 + i % 25}-0{1 + i % 9}-1{i % 9}"
            b = dict(c)
            if i % 10 == 3:  # edited differently on both sides: a first-sync conflict
                b["title"] = "Senior Engineer"; b["lastModified"] = ts(days=31)
            if i % 12 == 7:
                b["email"] = "  " + email.upper()  # normalisation makes it equal
            personal.append(p); business.append(b)
        elif i < 150:
            cat = ["personal", "family", "business", "personal"][i % 4]
            c["category"] = cat
            if cat == "business":
                c["company"] = COMPANIES[i % len(COMPANIES)]
            if i % 3 == 0:
                c["address"] = f"{i} Main Street, Springfield"
            if i % 11 == 0:
                c["x-crm-score"] = i  # a field no plugin knows: carried along
            personal.append(c)
        else:
            c.update(category="business", company=COMPANIES[i % len(COMPANIES)], title="Account manager")
            business.append(c)
    return personal, business

def calendar():
    personal, business = [], []
    for i in range(45):
        start = ts(days=i, hours=9 + i % 6, tz=(2 if i % 7 == 0 else None))
        e = {"id": f"event-p{i:03d}", "title": ["Dentist", "Yoga", "Team lunch", "Parents' evening", "Flight to Lisbon"][i % 5],
             "start": start, "end": ts(days=i, hours=10 + i % 6), "lastModified": ts(days=i % 20),
             "location": ["Clinic", "Studio", "Cafe", "School", "Airport"][i % 5],
             "category": ["personal", "personal", "business", "family", "personal"][i % 5]}
        if i % 9 == 0:
            e["visibility"] = "private"
            e["category"] = "business"
        if i % 4 == 0:
            e["attendees"] = ["Me@Home.example", "partner@home.example"]
        personal.append(e)
    for i in range(60):
        e = {"id": f"event-b{i:03d}", "title": ["Standup", "Board meeting", "1:1", "Quarterly review", "Customer call"][i % 5],
             "start": ts(days=i % 40, hours=13), "end": ts(days=i % 40, hours=14), "lastModified": ts(days=i % 25),
             "category": "business", "attendees": [person(i)[2], person(i + 1)[2]],
             "visibility": "confidential" if i % 8 == 1 else "public", "description": "Agenda in the shared drive"}
        business.append(e)
    return personal, business

def tasks():
    personal, business = [], []
    st = ["todo", "in_progress", "done", "cancelled"]
    for i in range(80):
        t = {"id": f"task-{i:03d}", "title": f"Task {i}: " + ["buy groceries", "file expenses", "renew passport", "prepare slides"][i % 4],
             "status": st[i % 4], "priority": ["low", "normal", "high"][i % 3], "lastModified": ts(days=i % 15),
             "category": ["personal", "business", "family", "business"][i % 4]}
        if i % 2 == 1:
            t["project"] = "Q1 launch"
        if i % 5 == 0:
            t["notes"] = "remember the receipt"
        personal.append(t)
        if t["category"] == "business" and i < 40:
            b = {k: v for k, v in t.items() if k != "notes"}
            if i % 8 == 3:
                b["status"] = "done"; b["lastModified"] = ts(days=20)
            business.append(b)
    for i in range(80, 135):
        business.append({"id": f"task-{i:03d}", "title": f"Task {i}: review pull request", "status": st[i % 3],
                         "due": ts(days=30 + i % 10), "priority": "normal", "project": "Platform",
                         "lastModified": ts(days=i % 18), "category": "business"})
    return personal, business

def documents():
    personal, business = [], []
    for i in range(120):
        d = {"id": f"doc-{i:03d}", "title": f"Document {i}", "uri": f"file:///home/me/docs/doc-{i:03d}.pdf",
             "mimeType": "application/pdf", "sizeBytes": 1000 + i * 37, "owner": "me",
             "lastModified": ts(days=i % 28), "category": ["personal", "business", "family"][i % 3],
             "tags": ["scan"] if i % 4 == 0 else []}
        personal.append(d)
    for i in range(100, 245):
        business.append({"id": f"doc-{i:03d}", "title": f"Spec {i}", "uri": f"https://drive.example.com/d/{i}",
                         "mimeType": "text/markdown", "sizeBytes": 500 + i, "owner": "team",
                         "classification": ["public", "internal", "confidential", "restricted"][i % 4],
                         "lastModified": ts(days=i % 21), "category": "business"})
    return personal, business

def communications():
    personal, business = [], []
    for i in range(55):
        f, l, email = person(i)
        personal.append({"id": f"msg-p{i:03d}", "channel": ["email", "sms", "chat", "call"][i % 4],
                         "timestamp": ts(days=i % 30, hours=i % 12, tz=(-5 if i % 6 == 0 else None)),
                         "from": email.upper() if i % 5 == 0 else email, "to": ["me@home.example"],
                         "subject": f"Hello {i}", "snippet": "Are we still on for", "body": "Are we still on for dinner?",
                         "threadId": f"t-{i // 3}", "lastModified": ts(days=i % 30),
                         "category": ["personal", "family", "business"][i % 3]})
    for i in range(60):
        f, l, email = person(i + 3)
        business.append({"id": f"msg-b{i:03d}", "channel": "email", "timestamp": ts(days=i % 30, hours=15),
                         "from": email, "to": ["me@work.example"], "subject": f"Re: project {i}",
                         "snippet": "Please find attached", "body": "Please find attached the figures.",
                         "attachments": [{"name": f"figures-{i}.xlsx", "sizeBytes": 20480}],
                         "threadId": f"bt-{i // 4}", "lastModified": ts(days=i % 30), "category": "business"})
    return personal, business

def write(domain, entity, items):
    if domain == "business" and entity == "contacts":
        # entity_mappings.json: the business domain calls `company` `organization`.
        items = [{("organization" if k == "company" else k): v for k, v in it.items()} for it in items]
    d = os.path.join(HERE, "data", domain)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{entity}.json"), "w") as fh:
        json.dump({entity: items}, fh, indent=2, ensure_ascii=False)
        fh.write("\n")

for name, fn in [("contacts", contacts), ("calendar", calendar), ("tasks", tasks),
                 ("documents", documents), ("communications", communications)]:
    p, b = fn()
    write("personal", name, p)
    write("business", name, b)
    print(f"{name}: {len(p)} personal, {len(b)} business")
