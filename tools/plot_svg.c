/* plot_svg.c: line charts as SVG (plot_svg.h). Plain text out, no library: SVG is a file format a
 * browser draws, and writing one needs nothing but printf. */
#include "plot_svg.h"

#include <math.h>
#include <stdio.h>

#include "cli.h"
#include "out_file.h"

#define WIDTH 900
#define HEIGHT 520
#define LEFT 80 /* plot area in pixels */
#define RIGHT 640
#define TOP 50
#define BOTTOM 460

static const char *const colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#555555", "#9467bd", "#ff7f0e"};

static void escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

/* A tick step of 1, 2 or 5 times a power of ten giving about `want` ticks over span. */
static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

typedef struct axes {
    double x0, x1, y0, y1; /* data range (y in log10 when log_y) */
    int log_y;
} axes;

static double px(const axes *a, double x) { return LEFT + (x - a->x0) / (a->x1 - a->x0) * (RIGHT - LEFT); }
static double py(const axes *a, double y)
{
    double v = a->log_y ? log10(y) : y;
    return BOTTOM - (v - a->y0) / (a->y1 - a->y0) * (BOTTOM - TOP);
}

int plot_svg(const char *path, const char *title, const char *x_label, const char *y_label, const plot_series *s,
             int n_series, int log_y)
{
    axes a = {INFINITY, -INFINITY, INFINITY, -INFINITY, log_y};
    for (int i = 0; i < n_series; i++)
        for (int j = 0; j < s[i].n; j++) {
            if (log_y && !(s[i].y[j] > 0))
                return cli_fail("%s: a value of '%s' is not positive on a log scale", path, s[i].name);
            double y = log_y ? log10(s[i].y[j]) : s[i].y[j];
            a.x0 = s[i].x[j] < a.x0 ? s[i].x[j] : a.x0;
            a.x1 = s[i].x[j] > a.x1 ? s[i].x[j] : a.x1;
            a.y0 = y < a.y0 ? y : a.y0;
            a.y1 = y > a.y1 ? y : a.y1;
        }
    if (!(a.x1 >= a.x0))
        return cli_fail("%s: nothing to plot", path);
    a.x0 = 0; /* counts start at zero */
    if (a.x1 <= a.x0)
        a.x1 = a.x0 + 1;
    double pad = (a.y1 - a.y0) * 0.05 + (log_y ? 0.02 : 1e-9);
    a.y0 -= pad;
    a.y1 += pad;
    tr_out_file out; /* written whole or not at all (core/out_file.h) */
    if (tr_out_open(&out, path, "w") != TR_OK)
        return cli_fail("%s", tr_last_error());
    FILE *f = out.f;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            WIDTH, HEIGHT, WIDTH, HEIGHT);
    fprintf(f, "<text x=\"%d\" y=\"28\" font-size=\"16\" text-anchor=\"middle\">", (LEFT + RIGHT) / 2);
    escape(f, title);
    fprintf(f, "</text>\n<g id=\"plot\" data-x0=\"%.17g\" data-x1=\"%.17g\" data-y0=\"%.17g\" data-y1=\"%.17g\" "
               "data-px0=\"%d\" data-px1=\"%d\" data-py0=\"%d\" data-py1=\"%d\" data-log-y=\"%d\">\n",
            a.x0, a.x1, a.y0, a.y1, LEFT, RIGHT, BOTTOM, TOP, log_y);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", LEFT, TOP,
            RIGHT - LEFT, BOTTOM - TOP);
    /* x ticks */
    double step = nice_step(a.x1 - a.x0, 8);
    for (double x = 0; x <= a.x1 + 1e-9; x += step)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%d\" "
                   "text-anchor=\"middle\">%g</text>\n",
                px(&a, x), TOP, px(&a, x), BOTTOM, px(&a, x), BOTTOM + 18, x);
    /* y ticks: 1-2-5 per decade on a log scale, a nice step otherwise */
    if (log_y) {
        for (int e = (int)floor(a.y0); e <= (int)ceil(a.y1); e++)
            for (int m = 1; m <= 5; m += m == 1 ? 1 : 3) {
                double y = m * pow(10, e), v = log10(y);
                if (v < a.y0 || v > a.y1)
                    continue;
                fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" "
                           "text-anchor=\"end\">%g</text>\n",
                        LEFT, py(&a, y), RIGHT, py(&a, y), LEFT - 6, py(&a, y) + 4, y);
            }
    } else {
        double ys = nice_step(a.y1 - a.y0, 6);
        for (double y = ceil(a.y0 / ys) * ys; y <= a.y1; y += ys)
            fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" "
                       "text-anchor=\"end\">%g</text>\n",
                    LEFT, py(&a, y), RIGHT, py(&a, y), LEFT - 6, py(&a, y) + 4, y);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (LEFT + RIGHT) / 2, BOTTOM + 40);
    escape(f, x_label);
    fprintf(f, "</text>\n<text transform=\"translate(22,%d) rotate(-90)\" text-anchor=\"middle\">", (TOP + BOTTOM) / 2);
    escape(f, y_label);
    fprintf(f, "%s</text>\n", log_y ? " (log scale)" : "");
    for (int i = 0; i < n_series; i++) {
        const char *color = colors[i % (int)(sizeof colors / sizeof colors[0])];
        /* earlier series are drawn wider, so that one hidden under a later one still shows */
        fprintf(f, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\"%s data-name=\"",
                color, s[i].dashed ? 2.0 : 2.0 + 0.9 * (n_series - 1 - i), s[i].dashed ? " stroke-dasharray=\"6,4\"" : "");
        escape(f, s[i].name);
        fputs("\" data-x=\"", f);
        for (int j = 0; j < s[i].n; j++)
            fprintf(f, "%s%.17g", j ? " " : "", s[i].x[j]);
        fputs("\" data-y=\"", f);
        for (int j = 0; j < s[i].n; j++)
            fprintf(f, "%s%.17g", j ? " " : "", s[i].y[j]);
        fputs("\" points=\"", f);
        for (int j = 0; j < s[i].n; j++)
            fprintf(f, "%s%.2f,%.2f", j ? " " : "", px(&a, s[i].x[j]), py(&a, s[i].y[j]));
        fputs("\"/>\n", f);
        /* legend */
        int ly = TOP + 10 + 22 * i;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/><text x=\"%d\" "
                   "y=\"%d\">",
                RIGHT + 14, ly, RIGHT + 40, ly, color, s[i].dashed ? " stroke-dasharray=\"6,4\"" : "", RIGHT + 46,
                ly + 4);
        escape(f, s[i].name);
        fputs("</text>\n", f);
    }
    fputs("</g>\n</svg>\n", f);
    return tr_out_commit(&out) == TR_OK ? 0 : cli_fail("%s", tr_last_error());
}
