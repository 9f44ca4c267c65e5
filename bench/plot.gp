# msgs/s against the number of ReceiveMessage requests in flight.
# gnuplot -e "datafile='sweep.dat'; outfile='sweep.png'; subtitle='...'" bench/plot.gp
# datafile columns: inflight, ceiling direct, worker direct, ceiling +delay, worker +delay
# ('?' where a point was not measured; row 1 is a header with the delay in ms).
if (!exists("subtitle")) subtitle = ""
set terminal pngcairo size 1000,620 font "sans,11" noenhanced
set output outfile
set datafile missing "?"
set key autotitle columnhead top left box opaque
set title "sqs_ingest: messages per second vs ReceiveMessage requests in flight\n".subtitle
set xlabel "requests in flight (ceiling --inflight, sqs_ingest.max_inflight)"
set ylabel "messages / s"
set logscale x 2
set xrange [0.8:40]
set xtics (1, 2, 4, 8, 16, 32)
set yrange [0:*]
set grid
plot datafile using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4", \
     "" using 1:3 with linespoints lw 2 pt 5 lc rgb "#d62728", \
     "" using 1:4 with linespoints lw 2 pt 6 dt 2 lc rgb "#1f77b4", \
     "" using 1:5 with linespoints lw 2 pt 4 dt 2 lc rgb "#d62728"
