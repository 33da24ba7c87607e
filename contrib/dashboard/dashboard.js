/*
 * dashboard.js: keeps the page in step with dashboard.py's /events stream.
 * Each event is a snapshot of every session's counters; rates are computed
 * here from the snapshots of the last second, on the server's clock, and
 * drawn for the last minute. The page only reads.
 */
"use strict";

const RATE_WINDOW = 1.0;	/* seconds of snapshots behind a rate */
const CHART_SPAN = 60;		/* seconds shown by the charts */
const COLORS = ["#2f6fdb", "#e0702a", "#1f9d55", "#b8379b", "#c98a00",
	"#17a2b8", "#7a56d1", "#d64545", "#5c7a29", "#8a6d3b"];

const state = {
	instance: null,
	seq: 0,
	sessions: new Map(),	/* name -> { color, recent: [...], series: [...] } */
	nextColor: 0,
};

const $ = (id) => document.getElementById(id);

function grouped(n) {
	return Math.round(n).toLocaleString("en-US");
}

/* 1234567 as "1.23 M", with UNIT as "1.23 MB": for rates and axes. */
function si(n, unit) {
	const prefixes = ["", "k", "M", "G", "T"];
	let u = 0;
	while (Math.abs(n) >= 1000 && u < prefixes.length - 1) {
		n /= 1000;
		u++;
	}
	const digits = n === 0 ? 0 : n < 10 ? 2 : n < 100 ? 1 : 0;
	const tail = prefixes[u] + (unit || "");
	return (u === 0 && digits === 0 ? String(Math.round(n)) :
	    n.toFixed(u === 0 && Number.isInteger(n) ? 0 : digits)) + (tail ? " " + tail : "");
}

function setField(el, value, text) {
	const v = value === null ? "" : String(value);
	if (el.dataset.value !== v)
		el.dataset.value = v;
	if (el.textContent !== text)
		el.textContent = text;
}

function setStatus(kind, text) {
	const el = $("status");
	el.dataset.state = kind;
	el.textContent = text;
}

/* A session's entry, created with the next color at its first sight. */
function entry(name) {
	let s = state.sessions.get(name);
	if (!s) {
		s = { color: COLORS[state.nextColor++ % COLORS.length], recent: [], series: [] };
		state.sessions.set(name, s);
	}
	return s;
}

/* Rates over the snapshots of the last RATE_WINDOW seconds; null until two. */
function rates(s, t, row) {
	if (s.recent.length && row.packets < s.recent[s.recent.length - 1].packets)
		s.recent = [];		/* counters went back: a new session of that name */
	s.recent.push({ t: t, packets: row.packets, bytes: row.bytes });
	while (s.recent.length > 2 && t - s.recent[1].t >= RATE_WINDOW)
		s.recent.shift();
	const a = s.recent[0], b = s.recent[s.recent.length - 1];
	if (b.t <= a.t)
		return { pps: null, bps: null };
	return { pps: (b.packets - a.packets) / (b.t - a.t), bps: (b.bytes - a.bytes) / (b.t - a.t) };
}

function cell(tr, field, cls) {
	let td = tr.querySelector(`[data-field="${field}"]`);
	if (!td) {
		td = document.createElement("td");
		td.dataset.field = field;
		if (cls)
			td.className = cls;
		tr.appendChild(td);
	}
	return td;
}

function row(name, color) {
	const body = $("sessions");
	for (const tr of body.children)
		if (tr.dataset.session === name)
			return tr;
	const tr = document.createElement("tr");
	tr.dataset.session = name;
	const td = cell(tr, "session", "text");
	const sw = document.createElement("span");
	sw.className = "swatch";
	sw.style.background = color;
	td.appendChild(sw);
	td.appendChild(document.createTextNode(""));
	for (const f of ["interface", "state"])
		cell(tr, f, "text");
	for (const f of ["packets", "bytes", "drops", "if_drops", "packets_per_s", "bytes_per_s"])
		cell(tr, f);
	cell(tr, "filter", "text filter");
	body.appendChild(tr);
	return tr;
}

function showRow(name, s, row_, r) {
	const tr = row(name, s.color);
	const first = tr.firstChild;
	first.dataset.value = name;
	first.lastChild.textContent = name;
	setField(cell(tr, "interface"), row_.interface, row_.interface);
	setField(cell(tr, "state"), row_.state, row_.state + (row_.error ? ": " + row_.error : ""));
	for (const f of ["packets", "bytes", "drops", "if_drops"])
		setField(cell(tr, f), row_[f], grouped(row_[f]));
	setField(cell(tr, "packets_per_s"), r.pps === null ? null : r.pps.toFixed(3),
		r.pps === null ? "\u2013" : si(r.pps));
	setField(cell(tr, "bytes_per_s"), r.bps === null ? null : r.bps.toFixed(3),
		r.bps === null ? "\u2013" : si(r.bps, "B"));
	const ft = cell(tr, "filter");
	setField(ft, row_.filter, row_.filter || "(all packets)");
	ft.title = row_.filter;
}

function update(snap) {
	state.seq++;
	setField($("seq"), state.seq, grouped(state.seq));
	if (!snap.ok) {
		setStatus("down", snap.stale ? "not responding" : "daemon down");
		$("message").textContent = snap.error;
		return;
	}
	setStatus("live", "live");
	$("message").textContent = "";
	if (snap.instance !== state.instance) {
		state.sessions.clear();	/* a new daemon: its counters start over */
		state.nextColor = 0;
		$("sessions").replaceChildren();
		state.instance = snap.instance;
		setField($("instance"), snap.instance || "", snap.instance || "\u2013");
	}
	const seen = new Set();
	let drops = 0;
	for (const r of snap.sessions) {
		const s = entry(r.session);
		const rt = rates(s, snap.t, r);
		s.series.push({ t: snap.t, pps: rt.pps, bps: rt.bps });
		while (s.series.length && snap.t - s.series[0].t > CHART_SPAN)
			s.series.shift();
		showRow(r.session, s, r, rt);
		seen.add(r.session);
		drops += r.drops;
	}
	for (const name of [...state.sessions.keys()]) {
		if (seen.has(name))
			continue;
		state.sessions.delete(name);	/* stopped */
		for (const tr of [...$("sessions").children])
			if (tr.dataset.session === name)
				tr.remove();
	}
	setField($("sessions-total"), seen.size, String(seen.size));
	const dt = $("drops-total");
	setField(dt, drops, grouped(drops));
	dt.classList.toggle("bad", drops > 0);
	$("empty").style.display = seen.size ? "none" : "";
	state.now = snap.t;
	draw($("chart-pps"), "pps", "");
	draw($("chart-bps"), "bps", "B");
	document.body.dataset.ready = "1";
}

/* A round axis maximum above v: 1, 2 or 5 times a power of ten. */
function niceMax(v) {
	if (v <= 0)
		return 1;
	const p = Math.pow(10, Math.floor(Math.log10(v)));
	for (const m of [1, 2, 5, 10])
		if (v <= m * p)
			return m * p;
	return 10 * p;
}

function draw(canvas, key, unit) {
	const dpr = window.devicePixelRatio || 1;
	const w = canvas.clientWidth, h = canvas.clientHeight;
	if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
		canvas.width = Math.round(w * dpr);
		canvas.height = Math.round(h * dpr);
	}
	const g = canvas.getContext("2d");
	g.setTransform(dpr, 0, 0, dpr, 0, 0);
	g.clearRect(0, 0, w, h);
	const left = 58, right = 10, top = 8, bottom = 40;
	const pw = w - left - right, ph = h - top - bottom;
	const now = state.now || 0;
	let max = 0;
	for (const s of state.sessions.values())
		for (const p of s.series)
			if (p[key] !== null && p[key] > max)
				max = p[key];
	max = niceMax(max);

	g.font = "11px system-ui, sans-serif";
	g.strokeStyle = "#e2e5ea";
	g.fillStyle = "#6b7585";
	g.lineWidth = 1;
	g.textAlign = "right";
	g.textBaseline = "middle";
	for (let i = 0; i <= 4; i++) {
		const y = top + ph - (ph * i) / 4;
		g.beginPath();
		g.moveTo(left, Math.round(y) + 0.5);
		g.lineTo(left + pw, Math.round(y) + 0.5);
		g.stroke();
		g.fillText(si((max * i) / 4, unit), left - 6, y);
	}
	g.textAlign = "center";
	g.textBaseline = "top";
	for (const ago of [60, 45, 30, 15, 0])
		g.fillText(ago ? "-" + ago + " s" : "now", left + pw - (pw * ago) / CHART_SPAN, top + ph + 5);

	g.lineWidth = 2;
	g.lineJoin = "round";
	let lx = left;
	for (const [name, s] of state.sessions) {
		g.strokeStyle = s.color;
		g.beginPath();
		let pen = false;
		for (const p of s.series) {
			if (p[key] === null) {
				pen = false;
				continue;
			}
			const x = left + pw - ((now - p.t) * pw) / CHART_SPAN;
			const y = top + ph - (p[key] / max) * ph;
			if (pen)
				g.lineTo(x, y);
			else
				g.moveTo(x, y);
			pen = true;
		}
		g.stroke();
		/* the legend, under the time axis */
		g.fillStyle = s.color;
		g.fillRect(lx, h - 12, 10, 3);
		g.fillStyle = "#1d2430";
		g.textAlign = "left";
		g.textBaseline = "middle";
		g.fillText(name, lx + 14, h - 10);
		lx += 24 + g.measureText(name).width;
	}
}

const events = new EventSource("events");
events.onmessage = (ev) => update(JSON.parse(ev.data));
events.onerror = () => setStatus("down", "reconnecting");
window.addEventListener("resize", () => {
	draw($("chart-pps"), "pps", "");
	draw($("chart-bps"), "bps", "B");
});
