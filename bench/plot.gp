# msgs/s against the number of ReceiveMessage requests in flight: the bare
# client and one sqs_ingest worker, straight to the stand-in, with the
# response delay, and through the TLS front.
# gnuplot -e "datafile='f.dat'; outfile='f.png'; subtitle='...'; xt='32, 64, 128'; xmax=160" bench/plot.gp
# datafile: row 1 a header (column titles), then one row per in-flight count:
# inflight, then bare client and worker for each endpoint ('?' where a point
# was not measured).
if (!exists("subtitle")) subtitle = ""
if (!exists("xt")) xt = "32, 64, 128"
if (!exists("xmax")) xmax = 160
set terminal pngcairo size 1000,620 font "sans,11" noenhanced
set output outfile
set datafile missing "?"
set key autotitle columnhead outside right box opaque
set title "sqs_ingest: messages per second vs ReceiveMessage requests in flight\n".subtitle
set xlabel "requests in flight (ceiling --inflight, sqs_ingest.max_inflight)"
set ylabel "messages / s"
set logscale x 2
set xrange [16:xmax]
eval "set xtics (".xt.")"
set yrange [0:*]
set grid
plot datafile using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4", \
     "" using 1:3 with linespoints lw 2 pt 5 lc rgb "#d62728", \
     "" using 1:4 with linespoints lw 2 pt 6 dt 2 lc rgb "#1f77b4", \
     "" using 1:5 with linespoints lw 2 pt 4 dt 2 lc rgb "#d62728", \
     "" using 1:6 with linespoints lw 2 pt 8 dt 3 lc rgb "#1f77b4", \
     "" using 1:7 with linespoints lw 2 pt 10 dt 3 lc rgb "#d62728"
