# The benchmark's chart: one panel per body size, one bar per location
# (median requests/s, log scale), each labelled with its ratio to /php;
# grey: the references, orange: the peers, blue: hookguard.
# bench/run calls it with: gnuplot -e "dat='…'; png='…'; heading='…'" chart.gp
# where dat holds one block per body (two blank lines apart):
#   title line "# <body>", then rows: location <TAB> req/s <TAB> × /php

set terminal pngcairo size 1500,560 font "DejaVu Sans,10"
set output png
set datafile separator "\t"
set style fill solid 0.85 border -1
set boxwidth 0.7
set logscale y
set grid ytics
set yrange [5:*]
set xtics rotate by -35 left nomirror
set ytics nomirror
set key off
stats dat using 2 nooutput
blocks = STATS_blocks

set multiplot layout 1, blocks title heading font ",13"
do for [i = 0:blocks - 1] {
    body = system(sprintf("awk 'BEGIN{RS=\"\\n\\n\\n\"} NR==%d' '%s' | head -1 | cut -c3-", i + 1, dat))
    set title sprintf("%s bodies", body)
    set ylabel (i == 0 ? "requests/s (median)" : "")
    plot dat index i using 0:2:(strcol(1) eq "/ceiling" || strcol(1)[1:6] eq "/floor" ? 0x999999 \
                                : strcol(1)[1:10] eq "/hookguard" ? 0x3070b0 : 0xd08040):xtic(1) \
             with boxes lc rgb variable, \
         dat index i using 0:2:(strcol(3) eq "-" ? "" : strcol(3) . "× php") \
             with labels offset 0,0.8 font ",8"
}
unset multiplot
