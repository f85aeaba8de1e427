/* plot_svg.h: line charts as SVG files, for results people would rather see than read (perplexity
 * over a stream, speed against a peer). The picture carries its data: every series is a
 * <polyline class="series"> with data-name, data-x and data-y attributes beside its points, and the
 * plot area says how data maps to pixels (data-x0/x1/y0/y1, data-px0/px1/py0/py1, data-log-y), so
 * a test can check what is drawn against the numbers it was drawn from. */
#ifndef TR_PLOT_SVG_H
#define TR_PLOT_SVG_H

typedef struct plot_series {
    const char *name;
    const double *x, *y;
    int n;
    int dashed;
} plot_series;

/* Writes the chart; y on a log scale if log_y (values must then be > 0). Returns 0, or 1 after
 * printing "transit: <path>: ..." */
int plot_svg(const char *path, const char *title, const char *x_label, const char *y_label, const plot_series *s,
             int n_series, int log_y);

#endif
