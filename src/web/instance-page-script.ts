/**
 * The browser script of the instance page, served as `/static/instance-page.js`. It reads the
 * instance from the body's data attributes, fetches the JSON endpoints every `data-refresh-ms`,
 * and renders with DOM text nodes only (never innerHTML), so ClearML-provided strings stay text.
 * Plots are uPlot charts, one per scalar, updated in place with `setData`. `window.claraView`
 * exposes the charts and a refresh count for tests and for debugging in the browser console.
 *
 * Kept as plain ES2020 in a string: it runs in the browser, not in Node, and needs no build step.
 */
export const INSTANCE_PAGE_SCRIPT = String.raw`'use strict';
(function () {
  var body = document.body;
  var base = '/api/instances/' + encodeURIComponent(body.dataset.namespace) + '/' +
    encodeURIComponent(body.dataset.name);
  var refreshMs = Number(body.dataset.refreshMs) || 5000;
  var token = new URLSearchParams(location.search).get('token');
  var colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd'];
  var view = { plots: {}, refreshes: 0, errors: {} };
  window.claraView = view;

  function get(path) {
    var headers = token ? { authorization: 'Bearer ' + token } : {};
    return fetch(base + path, { headers: headers, cache: 'no-store' }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) throw new Error(path + ': ' + res.status + ' ' + (data.error || ''));
        return data;
      });
    });
  }

  function text(id, value) {
    document.getElementById(id).textContent = value === undefined || value === null ? '' : value;
  }

  function cell(value) {
    var td = document.createElement('td');
    td.textContent = value === undefined || value === null ? '' : String(value);
    return td;
  }

  function fillTable(id, rows) {
    var tbody = document.querySelector('#' + id + ' tbody');
    tbody.replaceChildren.apply(tbody, rows.map(function (values) {
      var tr = document.createElement('tr');
      values.forEach(function (v) { tr.appendChild(cell(v)); });
      return tr;
    }));
  }

  function renderDetail(d) {
    text('phase', d.phase);
    text('iteration', d.lastIteration);
    text('queue', d.queue);
    text('message', d.message);
    var task = document.getElementById('task');
    task.replaceChildren();
    if (d.taskUrl && /^https?:\/\//i.test(d.taskUrl)) {
      var a = document.createElement('a');
      a.href = d.taskUrl;
      a.rel = 'noreferrer';
      a.textContent = d.taskId || 'task';
      task.appendChild(a);
    } else {
      task.textContent = d.taskId || '';
    }
    fillTable('models', d.models.map(function (m) {
      return [m.name, m.uri, m.framework, m.created];
    }));
    fillTable('conditions', d.conditions.map(function (c) {
      return [c.type, c.status, c.reason, c.message, c.lastTransitionTime];
    }));
  }

  function renderPlots(data) {
    var container = document.getElementById('plots');
    data.plots.forEach(function (p) {
      var rows = [p.x].concat(p.series.map(function (s) { return s.y; }));
      var chart = view.plots[p.metric];
      if (chart && chart.series.length === rows.length) {
        chart.setData(rows);
        return;
      }
      if (chart) chart.destroy();
      var holder = document.createElement('div');
      holder.className = 'plot';
      holder.dataset.metric = p.metric;
      container.appendChild(holder);
      view.plots[p.metric] = new uPlot({
        title: p.metric,
        width: 480,
        height: 240,
        scales: { x: { time: false } },
        axes: [{ label: 'iteration' }, {}],
        series: [{ label: 'iteration' }].concat(p.series.map(function (s, i) {
          return {
            label: s.variant,
            stroke: colors[i % colors.length],
            width: 2,
            points: { show: true, size: 5 },
          };
        })),
      }, rows, holder);
    });
  }

  function renderLog(data) {
    var pre = document.getElementById('log');
    pre.textContent = data.lines.map(function (l) {
      return new Date(l.timestamp).toISOString() + ' ' + l.level + ' ' + l.msg;
    }).join('\n');
    pre.scrollTop = pre.scrollHeight;
  }

  function section(name, path, render) {
    return get(path).then(function (data) {
      delete view.errors[name];
      render(data);
    }, function (err) {
      view.errors[name] = err.message;
    });
  }

  function refresh() {
    Promise.all([
      section('detail', '', renderDetail),
      section('scalars', '/scalars', renderPlots),
      section('log', '/log', renderLog),
    ]).then(function () {
      text('errors', Object.values(view.errors).join('; '));
      view.refreshes += 1;
      setTimeout(refresh, refreshMs);
    });
  }

  refresh();
})();
`;
