"""The figures of every view as data (shapes, measured labels), drawn by widgets/figure_export
(PNG, PDF) or written as SVG here; split by figure. ``analysis.io.figure_data`` gathers them."""
